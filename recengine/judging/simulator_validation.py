"""Is the simulator fit to judge policies? Held-out accuracy of its user model, and agreement with offline data.

    report = simulator_validation(sim, split, policies={"random": ..., "popularity": ..., "mf-bpr": ...,
                                                        "large-model": ...},
                                  offline_ndcg={"random": 0.005, ...}, large_model={"hr@10": ..., "ndcg@10": ...})
    text = validation_markdown(report)

Checks (each reported with its target, met or not):

* the user model's HR@10 / NDCG@10 / log-likelihood of the real held-out TEST items (full catalog, seen items
  masked) beside the large model's: NDCG@10 >= 0.9 × the large model's, HR@10 >= 0.16, log-likelihood above the
  popularity-only choice model's;
* the simulated return per session of the given policies (the same sessions for each: common random numbers)
  beside their real offline NDCG@10, Kendall's tau between the two orderings (target 1);
* the paired interval of (target policy − baseline policy) return per session (target: above 0);
* the share of already-consumed items in each policy's slates.
"""

from __future__ import annotations

import numpy as np

from recengine.eval.stats import mean_ci, paired_diff
from recengine.judging.slate_policies import DeterministicSlatePolicy

__all__ = ["simulator_validation", "validation_markdown", "kendall_tau", "random_ranking_ndcg"]

#: the user model must reach this share of the large model's held-out NDCG@10
NDCG_SHARE_TARGET = 0.9
#: and at least this held-out HR@10
HR_TARGET = 0.16


def kendall_tau(x, y) -> float:
    """Kendall's tau-b between two paired sequences (ties allowed); NaN when either is constant."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"x and y must be 1-D of one length, got {a.shape}, {b.shape}")
    i, j = np.triu_indices(a.size, 1)
    sa, sb = np.sign(a[i] - a[j]), np.sign(b[i] - b[j])
    n0 = i.size
    ties_a, ties_b = int((sa == 0).sum()), int((sb == 0).sum())
    denom = np.sqrt(float(n0 - ties_a) * float(n0 - ties_b))
    return float((sa * sb).sum() / denom) if denom > 0 else float("nan")


def random_ranking_ndcg(split, k: int = 10) -> float:
    """Expected test NDCG@k of a uniformly random ranking of each evaluated user's unseen items (the offline score
    of the random policy): with n unseen items, each of the k top positions holds the target with probability 1/n."""
    users = split.eval_users
    unseen = split.histories.num_items - (split.prefix_end("test")[users] - split.histories.offsets[users])
    gains = 1.0 / np.log2(np.arange(k) + 2.0)
    return float(np.mean([gains[: min(k, n)].sum() / n for n in unseen])) if users.size else float("nan")


class _ConsumedCounter:
    """Wraps a vectorised simulator; counts, over each slot's FIRST session (the sessions ``evaluate`` scores),
    the slate items the user had already consumed (``info["consumed_in_slate"]``) and the items shown."""

    def __init__(self, env):
        self.env = env
        self.num_envs, self.num_items = env.num_envs, env.num_items
        self.consumed = self.shown = 0
        self._alive = np.ones(env.num_envs, bool)

    def reset(self, seed=None, **kwargs):
        self._alive[:] = True
        self.consumed = self.shown = 0
        return self.env.reset(seed=seed, **kwargs)

    def step(self, slates):
        obs, rewards, term, trunc, info = self.env.step(slates)
        self.consumed += int(np.asarray(info["consumed_in_slate"])[self._alive].sum())
        self.shown += int(self._alive.sum()) * int(np.shape(slates)[1])
        self._alive &= ~(np.asarray(term) | np.asarray(trunc))
        return obs, rewards, term, trunc, info


def simulator_validation(
    sim,
    split,
    *,
    policies: dict,
    offline_ndcg: dict[str, float],
    large_model: dict[str, float] | None = None,
    target: str = "large-model",
    baseline: str = "popularity",
    num_sessions: int = 2048,
    seed: int = 2024,
    level: float = 0.95,
) -> dict:
    """The validation of a fitted ``recengine.env.SequentialUserModel`` ``sim`` on the leave-one-out ``split`` it was
    fitted on (its TEST items are the held-out behaviour).

    ``policies``: name -> a loop ``Policy`` (``act(obs, explore)``) or a function ``obs -> (B, k)`` slates;
    ``offline_ndcg``: name -> the policy's real held-out test NDCG@10 (same names); ``large_model``: its held-out
    metrics (``hr@10``, ``ndcg@10``, optionally ``log_likelihood``). Each policy plays ``num_sessions`` sessions
    (one per simulated slot) from ``seed``. Returns a JSON-able dict (see ``validation_markdown``).
    """
    from recengine.agents.loop import evaluate
    from recengine.env.response_model import popularity_log_likelihood
    from recengine.env.sequential_sim import SequentialVecSim

    missing = sorted(set(policies) - set(offline_ndcg))
    if missing:
        raise ValueError(f"offline_ndcg: no offline NDCG@10 for {missing}")
    if len(policies) < 2:
        raise ValueError(f"policies: need at least two to compare orderings, got {len(policies)}")
    user_model = sim.response.evaluate(split, "test")
    pop_ll = popularity_log_likelihood(split, "test")
    lm = dict(large_model or {})
    env = _ConsumedCounter(SequentialVecSim(sim, num_sessions))
    rows, returns = {}, {}
    for name, policy in policies.items():
        if not hasattr(policy, "act"):
            policy = DeterministicSlatePolicy(policy)  # a plain obs -> (B, k) slates function
        m = evaluate(policy, env, seed=seed)
        returns[name] = m["session_returns"]
        ci = mean_ci(m["session_returns"], level)
        rows[name] = {
            "offline_ndcg@10": float(offline_ndcg[name]),
            "sim_return": ci["mean"],
            "return_ci": [ci["ci_low"], ci["ci_high"]],
            "ctr": m["ctr"],
            "avg_session_length": m["avg_session_length"],
            "consumed_share": env.consumed / max(env.shown, 1),
        }
    names = list(rows)
    tau = kendall_tau([rows[n]["offline_ndcg@10"] for n in names], [rows[n]["sim_return"] for n in names])
    paired = None
    if target in returns and baseline in returns:
        d = paired_diff(returns[target], returns[baseline], level)
        paired = {"target": target, "baseline": baseline, "diff": d["mean"], "ci": [d["ci_low"], d["ci_high"]]}
    checks = {
        f"user model NDCG@10 >= {NDCG_SHARE_TARGET} x large model's": bool(
            user_model["ndcg@10"] >= NDCG_SHARE_TARGET * lm["ndcg@10"]
        )
        if "ndcg@10" in lm
        else None,
        f"user model HR@10 >= {HR_TARGET}": bool(user_model["hr@10"] >= HR_TARGET),
        "user model log-likelihood above the popularity choice model's": bool(user_model["log_likelihood"] > pop_ll),
        "Kendall tau (simulated return vs offline NDCG@10) = 1": bool(tau == 1.0) if tau == tau else None,
        f"{target} - {baseline} return: interval above 0": bool(paired["ci"][0] > 0) if paired else None,
    }
    report = sim.fit_report or {}
    return {
        "user_model": {"test": user_model, "popularity_log_likelihood": pop_ll},
        "large_model": lm,
        "policies": rows,
        "kendall_tau": tau,
        "paired": paired,
        "checks": checks,
        "sessions": {"num_sessions": num_sessions, "seed": seed, "level": level},
        "fit": {k: report[k] for k in ("response_model", "sessions", "calibration", "seconds") if k in report},
        "popularity_weight": float(sim.response.popularity_weight),
    }


def _fmt(x, digits: int = 4) -> str:
    return "—" if x is None or (isinstance(x, float) and x != x) else f"{x:.{digits}f}"


def validation_markdown(v: dict) -> str:
    """The "Simulator validation" report section of a ``simulator_validation`` result."""
    um, lm = v["user_model"]["test"], v["large_model"]
    lines = [
        "## Simulator validation",
        "",
        "The user model predicts the real held-out test item (full catalog, seen items masked):",
        "",
        "| model | HR@10 | NDCG@10 | log-likelihood |",
        "|---|---|---|---|",
        f"| simulator's user model | {_fmt(um['hr@10'])} | {_fmt(um['ndcg@10'])} | {_fmt(um['log_likelihood'], 3)} |",
        f"| large model | {_fmt(lm.get('hr@10'))} | {_fmt(lm.get('ndcg@10'))} | {_fmt(lm.get('log_likelihood'), 3)} |",
        f"| popularity choice model | — | — | {_fmt(v['user_model']['popularity_log_likelihood'], 3)} |",
        "",
    ]
    pct = int(round(100 * v["sessions"]["level"]))
    lines += [
        f"Policies in the simulator ({v['sessions']['num_sessions']} sessions each, the same for every policy) "
        "beside their real offline NDCG@10:",
        "",
        f"| policy | offline NDCG@10 | simulated return/session [{pct}% CI] | CTR | already-consumed share of slates |",
        "|---|---|---|---|---|",
    ]
    for name, r in v["policies"].items():
        lines.append(
            f"| {name} | {_fmt(r['offline_ndcg@10'])} | {r['sim_return']:.3f} [{r['return_ci'][0]:.3f}, "
            f"{r['return_ci'][1]:.3f}] | {r['ctr']:.3f} | {r['consumed_share']:.3f} |"
        )
    lines += ["", f"Kendall's tau between the two orderings: {_fmt(v['kendall_tau'], 3)} (target 1)."]
    p = v.get("paired")
    if p:
        lines.append(
            f"Paired difference {p['target']} − {p['baseline']}: {p['diff']:+.3f} per session "
            f"[{p['ci'][0]:+.3f}, {p['ci'][1]:+.3f}] (target: above 0)."
        )
    sessions = v.get("fit", {}).get("sessions")
    if sessions:
        par, fit = sessions["parameters"], sessions["fit"]
        lines += [
            "",
            f"Leaving model (sessions cut at {sessions['gap_seconds'] / 60:.0f} min of inactivity, "
            f"{sessions['num_sessions']} train sessions): a mixture of two geometric lengths, "
            f"w = {par['weight_short']:.3f}, p_short = {par['p_short']:.3f}, p_long = {par['p_long']:.4f}; "
            f"mean length observed {fit['observed_mean']:.1f}, fitted {fit['fitted_mean']:.1f}, "
            f"Kolmogorov distance {fit['ks_distance']:.3f}.",
        ]
    lines += ["", "| check | met |", "|---|---|"]
    lines += [f"| {text} | {'—' if ok is None else ('yes' if ok else 'NO')} |" for text, ok in v["checks"].items()]
    return "\n".join(lines) + "\n"
