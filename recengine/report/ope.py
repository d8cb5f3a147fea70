"""`recengine ope`: off-policy evaluation on the Open Bandit Dataset, checked against the other policy's own logs
(the command's options and their checks: recengine.cli.ope).

The logs of one ZOZOTOWN policy (``--behavior``) estimate the value (click rate per impression) of the other
(``--evaluate``) with every estimator in ``recengine.eval.ope_estimators``; the evaluated policy's own logs give its
on-policy value, the reference each estimate's relative error is measured against (obp's protocol). Bernoulli
Thompson Sampling's action distribution comes from its published production Beta priors by Monte Carlo, as obp
computes it; the reward model for DM and the doubly robust family is ``cross_fitted_rewards``.

Writes ``ope.json`` (every estimate, interval, relative error and effective sample size, with the settings, and
under "files" the files written), ``ope.md`` (a five-line summary, then the same as a table) and ``ope.png``
(estimates with their intervals against the on-policy value).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np

from recengine._atomic import atomic_path, write_text
from recengine.machine import describe_machine

__all__ = ["main_from_args", "run_ope", "markdown"]

_BTS_NOTE = (
    "Bernoulli Thompson Sampling's action distribution is computed as obp computes it: Monte Carlo "
    "simulation of the policy from its published production Beta priors (obp's prior_bts.yaml), "
    "{n_sim} simulated rankings, counting how often each item lands at each position."
)
_RANDOM_NOTE = "The uniform random policy's action distribution is exact: 1 / n_actions per item and position."


def _estimators(args) -> dict:
    from recengine.eval.ope_estimators import (
        DirectMethod,
        DoublyRobust,
        DoublyRobustWithShrinkage,
        InverseProbabilityWeighting,
        SelfNormalizedDR,
        SelfNormalizedIPW,
        SwitchDR,
    )

    out = {
        "DM": DirectMethod(),
        "IPS": InverseProbabilityWeighting(),
        "SNIPS": SelfNormalizedIPW(),
        "DR": DoublyRobust(),
        "SNDR": SelfNormalizedDR(),
        f"Switch-DR (lambda={args.switch_lambda:g})": SwitchDR(args.switch_lambda),
        f"DRos (lambda={args.dros_lambda:g})": DoublyRobustWithShrinkage(args.dros_lambda),
    }
    if args.clip is not None:
        out[f"IPS (clip={args.clip:g})"] = InverseProbabilityWeighting(clip=args.clip)
        out[f"DR (clip={args.clip:g})"] = DoublyRobust(clip=args.clip)
    return out


def run_ope(args) -> dict:
    """Every estimate of the ``--evaluate`` policy's value from the ``--behavior`` policy's logs, as a dict."""
    from recengine.data.open_bandit import load_bts_prior, load_open_bandit
    from recengine.eval.bernoulli_ts import bernoulli_ts_action_dist, uniform_action_dist
    from recengine.eval.ope_inputs import prepare_rounds
    from recengine.eval.reward_regression import cross_fitted_rewards

    if args.behavior == args.evaluate:
        raise ValueError(
            f"--evaluate must differ from --behavior (both {args.behavior!r}): the other policy's "
            f"logs are the reference"
        )
    start = time.perf_counter()
    logs = load_open_bandit(args.behavior, args.campaign, root=args.data_root)
    reference = load_open_bandit(args.evaluate, args.campaign, root=args.data_root)
    if args.evaluate == "bts":
        alpha, beta = load_bts_prior(args.campaign, root=args.data_root)
        if alpha.shape[0] != logs.n_actions:
            raise ValueError(f"the BTS priors cover {alpha.shape[0]} items, the logs {logs.n_actions}")
        action_dist = bernoulli_ts_action_dist(
            alpha, beta, logs.len_list, n_rounds=logs.n_rounds, n_sim=args.n_sim, random_state=args.seed
        )
        note = _BTS_NOTE.format(n_sim=args.n_sim)
    else:
        action_dist = uniform_action_dist(logs.n_actions, logs.len_list, n_rounds=logs.n_rounds)
        note = _RANDOM_NOTE
    q_hat = cross_fitted_rewards(
        logs.context,
        logs.action,
        logs.position,
        logs.reward,
        n_actions=logs.n_actions,
        len_list=logs.len_list,
        n_folds=args.folds,
        random_state=args.seed,
    )
    rounds = prepare_rounds(logs.reward, logs.action, logs.position, logs.pscore, action_dist, q_hat)
    truth = reference.on_policy_value()
    rows = {}
    for name, est in _estimators(args).items():
        iv = est.estimate_interval(
            rounds=rounds, alpha=args.alpha, n_bootstrap_samples=args.bootstrap, random_state=args.seed
        )
        rows[name] = {
            "estimate": iv.estimate,
            "lower": iv.lower,
            "upper": iv.upper,
            "relative_error": abs(iv.estimate - truth) / truth if truth > 0 else float("nan"),
            "ess": est.effective_sample_size(rounds=rounds),
        }
    return {
        "dataset": "Open Bandit Dataset (ZOZOTOWN), small sample",
        "campaign": args.campaign,
        "behavior": args.behavior,
        "evaluate": args.evaluate,
        "logs": logs.source,
        "n_rounds": logs.n_rounds,
        "n_actions": logs.n_actions,
        "len_list": logs.len_list,
        "on_policy_value": truth,
        "on_policy_source": reference.source,
        "on_policy_rounds": reference.n_rounds,
        "behavior_value": logs.on_policy_value(),
        "action_dist": note,
        "reward_model": f"logistic regression per position on [user features, one-hot item], "
        f"{args.folds}-fold cross-fitted",
        "interval": f"{100 * (1 - args.alpha):g}% percentile bootstrap over rounds, {args.bootstrap} resamples, "
        f"seed {args.seed} (the reward model held fixed)",
        "estimates": rows,
        "seconds": time.perf_counter() - start,
    }


def _f(value: float, pattern: str) -> str:
    return "–" if value is None or not math.isfinite(value) else pattern.format(value)


def summary(result: dict) -> list[str]:
    """The five lines ope.md opens with: what was estimated from what, the reference value, the closest estimator,
    how many intervals cover the reference, and the data."""
    rows = {n: r for n, r in result["estimates"].items() if math.isfinite(r["relative_error"])}
    best = min(rows, key=lambda n: rows[n]["relative_error"]) if rows else None
    covering = [n for n, r in result["estimates"].items() if r["lower"] <= result["on_policy_value"] <= r["upper"]]
    closest = (
        f"Closest estimate: {best}, {rows[best]['estimate']:.5f} ({rows[best]['relative_error']:.1%} off)."
        if best
        else "No estimator gave a finite estimate."
    )
    return [
        f"- Estimated: the click rate of {result['evaluate']} from {result['n_rounds']} logged rounds of "
        f"{result['behavior']}, with {len(result['estimates'])} estimators.",
        f"- Reference: {result['evaluate']}'s own logged click rate, {result['on_policy_value']:.5f} "
        f"({result['on_policy_rounds']} rounds).",
        f"- {closest}",
        f"- {len(covering)} of {len(result['estimates'])} intervals contain the reference.",
        f"- Data: {result['dataset']}, campaign {result['campaign']}; {result['interval']}.",
    ]


def markdown(result: dict) -> str:
    """ope.md: a five-line summary, the settings, then one row per estimator."""
    lines = [
        f"# Off-policy evaluation: {result['evaluate']} from {result['behavior']} logs",
        "",
        *summary(result),
        "",
        f"{result['dataset']}, campaign `{result['campaign']}`: {result['n_rounds']} logged rounds of the "
        f"{result['behavior']} policy ({result['n_actions']} items, {result['len_list']} positions). "
        f"Reference: the on-policy value of {result['evaluate']}, the mean click of its own "
        f"{result['on_policy_rounds']} logged rounds, **{result['on_policy_value']:.5f}** "
        f"(the {result['behavior']} policy's own: {result['behavior_value']:.5f}).",
        "",
        result["action_dist"],
        "",
        f"Reward model: {result['reward_model']}. Intervals: {result['interval']}.",
        "",
        "| estimator | estimate | interval | relative error | ESS |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, row in result["estimates"].items():
        lines.append(
            f"| {name} | {_f(row['estimate'], '{:.5f}')} | [{_f(row['lower'], '{:.5f}')}, "
            f"{_f(row['upper'], '{:.5f}')}] | {_f(row['relative_error'], '{:.1%}')} | "
            f"{_f(row['ess'], '{:.0f}')} |"
        )
    return "\n".join(lines) + "\n"


def plot(path: str, result: dict) -> None:
    """Each estimate with its interval, and the on-policy value as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["estimates"])
    est = np.array([result["estimates"][n]["estimate"] for n in names])
    lo = np.array([result["estimates"][n]["lower"] for n in names])
    hi = np.array([result["estimates"][n]["upper"] for n in names])
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(names)), 4.0))
    ax.errorbar(np.arange(len(names)), est, yerr=[est - lo, hi - est], fmt="o", capsize=4, label="estimate")
    ax.axhline(
        result["on_policy_value"], color="tab:red", linestyle="--", label=f"on-policy value of {result['evaluate']}"
    )
    ax.set_xticks(np.arange(len(names)), names, rotation=30, ha="right")
    ax.set_ylabel("click rate per impression")
    ax.set_title(f"{result['evaluate']} estimated from {result['behavior']} logs")
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def main_from_args(args: argparse.Namespace) -> int:
    """Run the evaluation, print the table (unless ``args.quiet``), write ope.json, ope.md and ope.png under
    ``args.out``; a missing or malformed dataset is one line on stderr and exit code 2."""
    from recengine.report.writer import write_json

    try:
        result = run_ope(args)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        message = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        print(f"recengine ope: error: {message}", file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    text = markdown(result)
    if not getattr(args, "quiet", False):
        print(text)
    result["machine"] = describe_machine()
    result["files"] = ["ope.json", "ope.md", "ope.png"]
    write_json(os.path.join(args.out, "ope.json"), result)
    write_text(os.path.join(args.out, "ope.md"), text)
    plot(os.path.join(args.out, "ope.png"), result)
    print(f"wrote {args.out}: {', '.join(result['files'])}")
    return 0
