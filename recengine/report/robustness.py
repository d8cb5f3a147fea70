"""Is "RL on top of the large model beats the large model alone" robust, or an artefact of one simulator?

The main comparison trains and judges every agent in one simulator; its paired difference hybrid − large model
(with several ``--seeds``, also its interval over training seeds) is the first check. This module adds the others,
for the large model and the hybrids (training seed 0):

* ``popularity weight halved``: the main simulator with half the popularity share of utility (the no-click offset
  recalibrated to the same best-slate click rate); the agents trained in the main simulator are judged there;
* ``second simulator``: a simulator fitted with another seed and a smaller response model on a random half of the
  users; the agents trained in the main simulator are judged there, on those users;
* ``disjoint halves``: a third simulator fitted on the other half of the users; the hybrids are fine-tuned afresh
  (from the same pre-trained large model) in it and judged, with the large model, in the second simulator (RL4RS
  style: evaluated in a simulator built from data the RL never met).

In each, every policy plays the same sessions (common random numbers) and hybrid − large model is reported with
its paired interval; ``verdict`` says in plain words where a hybrid beats the large model and where not.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from recengine.agents.entry import CompareSetup
from recengine.agents.registry import lookup
from recengine.eval.stats import mean_ci, paired_diff
from recengine.report.headroom import HYBRID_PREFIX

ROBUST_AGENTS = ("large-model", "large-model-logged", "hybrid-dqn", "hybrid-reinforce", "hybrid-slateq")
"""the policies the robustness checks judge: the large model, the hybrids built on it, and the large model with
the logged items excluded (no RL: what of a hybrid's gain needs no learning)"""

HYBRIDS = tuple(n for n in ROBUST_AGENTS if n.startswith(HYBRID_PREFIX))
"""the checks' subjects: RL on top of the large model"""

Log = Callable[..., None]


def variant_response_config(setup: CompareSetup, seed: int):
    """The response model of the extra simulators: smaller than the main one (another size) with its own seed,
    trained for ``robust_fit_epochs`` epochs (a budget in epochs: the figures do not depend on the machine's load)."""
    from recengine.train import SASRecConfig

    cfg = setup.settings
    inf = float("inf")
    if cfg.quick:
        return SASRecConfig(
            dim=16, num_layers=1, num_heads=1, max_epochs=cfg.robust_fit_epochs, max_seconds=inf, seed=seed
        )
    return SASRecConfig(dim=32, num_layers=1, max_epochs=cfg.robust_fit_epochs, max_seconds=inf, patience=3, seed=seed)


def judge(
    policies: dict, simulator, num_sessions: int, seed: int, oracles: dict | None = None, oracle_sessions: int = 0
) -> dict:
    """name -> each session's greedy return, every policy on the same ``num_sessions`` sessions of ``simulator``;
    ``oracles`` (name -> env -> policy) are built on an environment of the first ``oracle_sessions`` of them (all
    when 0) and play those."""
    from recengine.agents.loop import evaluate
    from recengine.env import vector_env

    env = vector_env(simulator, num_sessions)
    out = {name: evaluate(policy, env, seed=seed)["session_returns"] for name, policy in policies.items()}
    for name, make in (oracles or {}).items():
        small = vector_env(simulator, min(oracle_sessions or num_sessions, num_sessions))
        out[name] = evaluate(make(small), small, seed=seed)["session_returns"]
    return out


def summarize(returns: dict, level: float, description: str) -> dict:
    """A variant's entry: each policy's mean return with its interval, every other policy − large model paired,
    and (with the oracles) the headroom and each hybrid's closed share of it (recengine.report.headroom)."""
    from recengine.report.headroom import headroom

    out = {"description": description, "returns": {}, "paired": {}}
    shared = min(len(r) for r in returns.values())  # the oracles may play the first sessions only
    gap = headroom({name: np.asarray(r[:shared], np.float64) for name, r in returns.items()}, level)
    if gap:
        out["headroom"] = gap
    for name, r in returns.items():
        ci = mean_ci(r, level)
        out["returns"][name] = {"mean": ci["mean"], "ci95": [ci["ci_low"], ci["ci_high"]], "n": ci["n"]}
    for name, r in returns.items():
        if name != "large-model" and "large-model" in returns:
            m = min(len(r), len(returns["large-model"]))
            d = paired_diff(np.asarray(r[:m]), np.asarray(returns["large-model"][:m]), level)
            out["paired"][name] = {"diff": d["mean"], "ci95": [d["ci_low"], d["ci_high"]], "n": d["n"]}
    return out


def disjoint_halves(num_users: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint random halves of the users (sorted ids), drawn from their own generator."""
    perm = np.random.default_rng(seed).permutation(num_users)
    return np.sort(perm[: num_users // 2]), np.sort(perm[num_users // 2 :])


def robustness_checks(setup: CompareSetup, policies: dict, log: Log = print, oracles: dict | None = None) -> dict:
    """The three checks of the module docstring for the ROBUST_AGENTS present in ``policies`` (seed 0's trained
    policies); {} when the large model or every hybrid is missing. ``oracles`` (name -> env -> policy, e.g.
    recengine.report.headroom.oracle_factories) play every variant's sessions beside them.

    The second simulator is the disjoint halves' judge: fitted with another seed and a smaller response model on
    the other half of the users, it serves both checks (the large model's returns there are shared by them: the
    same policy on the same sessions)."""
    from recengine.env import fit_simulator
    from recengine.report.arena import Arena, run_agent

    cfg = setup.settings
    names = [n for n in ROBUST_AGENTS if n in policies]
    if "large-model" not in names or not any(n in HYBRIDS for n in names):
        return {}
    seed, level, n_sessions = cfg.seed + 999, cfg.ci_level, cfg.robust_sessions
    chosen = {n: policies[n] for n in names}
    out = {"agents": names, "sessions": n_sessions, "variants": {}}

    halved = setup.simulator.with_popularity_weight(0.5)
    out["variants"]["popularity weight halved"] = summarize(
        judge(chosen, halved, n_sessions, seed, oracles, cfg.oracle_sessions),
        level,
        "the main simulator with half the popularity share of utility; agents trained in the main simulator",
    )
    log("robustness: popularity weight halved done")

    fit = dict(config=cfg.simulator_config())
    half_a, half_b = disjoint_halves(setup.data.num_users, cfg.simulator_seed + 2)
    seed_a, seed_b = cfg.simulator_seed + 3, cfg.simulator_seed + 4
    sim_a, sim_b = (
        fit_simulator(
            setup.data, setup.split, seed=s, users=half, response_config=variant_response_config(setup, s), **fit
        )
        for s, half in ((seed_a, half_a), (seed_b, half_b))
    )
    in_b = judge(chosen, sim_b, n_sessions, seed, oracles, cfg.oracle_sessions)
    out["variants"]["second simulator"] = summarize(
        in_b,
        level,
        f"fitted with seed {seed_b} and a smaller response model on {half_b.size} of the users; agents trained "
        "in the main simulator, judged on those users",
    )
    log("robustness: second simulator done")

    setup_a = dataclasses.replace(setup, simulator=sim_a)
    arena = Arena.of(setup_a, evaluation_simulator=sim_b, eval_sessions=n_sessions)
    # not trained in the simulator: the large model (with or without the logged items) and the oracles play the
    # same as judged above
    returns = {name: r for name, r in in_b.items() if name not in HYBRIDS}
    for n in names:
        if n in HYBRIDS:
            returns[n] = run_agent(lookup(n), setup_a, arena, 0, log, offline=False)[0]["session_returns"]
    out["variants"]["disjoint halves"] = summarize(
        returns,
        level,
        f"hybrids fine-tuned afresh in a simulator fitted on {half_a.size} users, judged with the large "
        f"model in the second simulator, fitted on the other {half_b.size} users, on those users",
    )
    log("robustness: disjoint halves done")
    return out


def _interval(d: dict) -> str:
    return f"{d['diff']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]"


def _sign(d: dict) -> str:
    if d["ci95"][0] > 0:
        return "beats"
    if d["ci95"][1] < 0:
        return "loses to"
    return "does not separate from"


#: what a verdict from one training seed is: the learning agents' figures move with the CPU, the thread count and
#: the library versions, by about as much as the paired intervals are wide
ONE_SEED = (
    "one training seed on one machine: the learning agents' figures differ on another CPU model, thread count or "
    "library versions, so this is not a robust conclusion; --seeds 5 gives one"
)


def overall(verdicts: dict) -> str:
    """One plain sentence over every hybrid and check: does RL on top of the large model beat it? Only a
    multi-seed run's verdict is called robust; a single seed's says it is one seed on one machine."""
    outcomes = [r["outcome"] for v in verdicts.values() for r in v["checks"].values()]
    if not outcomes:
        return "No hybrid was run, so this comparison says nothing about RL on top of the large model."
    one_seed = any(v.get("seeds", 1) < 2 for v in verdicts.values())
    if all(o == "beats" for o in outcomes):
        sentence = "RL on top of the large model beats the large model alone in every check"
        return sentence + (f", from {ONE_SEED}." if one_seed else ", over several training seeds: robust.")
    if not any(o == "beats" for o in outcomes):
        sentence = "RL on top of the large model does not beat the large model alone in any check"
        return sentence + (f", from {ONE_SEED}." if one_seed else ", over several training seeds.")
    return (
        f"RL on top of the large model beats the large model alone in {outcomes.count('beats')} of "
        f"{len(outcomes)} hybrid-check pairs only: the conclusion is not robust"
        + (f" ({ONE_SEED})." if one_seed else ".")
    )


def verdict(agents: dict, robustness: dict) -> dict:
    """Per hybrid: every check's paired difference from the large model and its outcome ("beats", "loses to",
    "does not separate from"), and one sentence. The main check uses the sessions' interval and, with several
    seeds, also the seeds' (both must agree for "beats" / "loses to")."""
    out = {}
    for hybrid in HYBRIDS:
        main = agents.get(hybrid, {}).get("paired", {}).get("large-model")
        if main is None:
            continue
        checks = {}
        outcome = _sign(main)
        if "seed_ci95" in main:
            seeds = _sign({"ci95": main["seed_ci95"]})
            outcome = outcome if seeds == outcome else "does not separate from"
        checks["main simulator"] = {
            "diff": main["diff"],
            "ci95": main["ci95"],
            "seed_ci95": main.get("seed_ci95"),
            "outcome": outcome,
        }
        for name, v in robustness.get("variants", {}).items():
            if hybrid in v["paired"]:
                d = v["paired"][hybrid]
                checks[name] = {"diff": d["diff"], "ci95": d["ci95"], "outcome": _sign(d)}
        beats = [c for c, r in checks.items() if r["outcome"] == "beats"]
        n_seeds = len(main.get("seed_diffs", [])) or 1  # one difference per training seed when there are several
        sentence = (
            f"{hybrid} beats the large model in {len(beats)} of {len(checks)} checks: "
            + "; ".join(f"{c}: {r['outcome']} it, {_interval(r)} clicks per session" for c, r in checks.items())
            + (f" ({ONE_SEED})." if n_seeds < 2 else f" (over {n_seeds} training seeds).")
        )
        out[hybrid] = {"checks": checks, "beats_in": beats, "seeds": n_seeds, "summary": sentence}
    return out
