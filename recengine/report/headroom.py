"""How much can RL gain over the large model? The oracles beside the agents, the headroom, the share of it each
hybrid closes, and where the headroom comes from.

Two planners that read the simulator's own model (recengine.judging.oracle_myopic, oracle_lookahead) play the same
evaluation sessions as the agents. They are yardsticks, never agents: no deployable recommender knows the users'
true state. From their per-session returns, paired with the agents' on the same sessions:

    headroom            = lookahead oracle − large model       (what a better policy could still win)
    value of planning   = lookahead oracle − myopic oracle     (what looking beyond the next click is worth)
    closed share        = (hybrid − large model) / headroom    (the delta-method interval of a ratio of paired means)

and, for each mechanism of the simulator that makes a slate matter beyond its click (genre fatigue, the leave
hazard after clicks, the quit after slates without a click, the evolving response-model state), the same headroom
in the main simulator with that mechanism switched off: what each mechanism contributes.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np

from recengine.agents.entry import CompareSetup
from recengine.eval.stats import mean_ci, paired_diff, paired_ratio

Log = Callable[..., None]

MYOPIC = "oracle-myopic"
LOOKAHEAD = "oracle-lookahead"
ORACLES = (MYOPIC, LOOKAHEAD)
"""the yardsticks, in report order (every table marks them as oracles)"""

HYBRID_PREFIX = "hybrid"
"""agents whose name starts so are RL on top of the large model: their closed share is reported"""

NO_RL_SHARE = ("large-model-logged",)
"""baselines without RL whose closed share is reported beside the hybrids': what a hybrid gains by a choice that
needs no learning (excluding each user's logged items)"""


def shares_of(names) -> list[str]:
    """The agents among `names` whose closed share of the headroom is reported, in order."""
    return [n for n in names if n.startswith(HYBRID_PREFIX) or n in NO_RL_SHARE]


NO_MECHANISM_OFF = "none"
"""the label of the main simulator's row (every mechanism on) in the mechanism table"""

MECHANISMS = {
    "genre fatigue": {"fatigue_weight": 0.0},
    "leave hazard after clicks": {"hazard_scale": 0.0},
    "quit after slates without a click": {"no_click_quit": 0.0},
    "evolving state": {"evolving_state": False},
}
"""each mechanism that makes a slate matter beyond its click, and the simulator settings that switch it off"""


def oracle_factories(setup: CompareSetup) -> dict[str, Callable]:
    """name -> (vectorised env -> the oracle bound to it), with the comparison's lookahead budget."""
    from recengine.judging.oracle_lookahead import LookaheadOracle
    from recengine.judging.oracle_myopic import MyopicOracle

    cfg = setup.settings
    return {
        MYOPIC: MyopicOracle,
        LOOKAHEAD: lambda env: LookaheadOracle(env, cfg.lookahead, seed=cfg.seed + 77),
    }


def run_oracle(name: str, factory: Callable, setup: CompareSetup, arena, seed_index: int, log: Log) -> dict:
    """One oracle on training seed ``seed_index``'s evaluation sessions (the agents' sessions): a row shaped like
    an agent's (recengine.report.arena.run_agent) with nothing trained and no offline metrics."""
    from recengine.agents.loop import evaluate
    from recengine.env import vector_env
    from recengine.eval.metrics import HR_AT_10, NDCG_AT_10

    cfg = setup.settings
    t = time.perf_counter()
    env = vector_env(arena.evaluation.model, oracle_sessions(cfg), config=arena.evaluation.config)
    policy = factory(env)
    metrics = evaluate(policy, env, seed=cfg.seed + 999 + 1000 * seed_index, item_vectors=arena.item_vectors)
    row = {
        key: metrics[key]
        for key in ("avg_return", "ctr", "coverage", "diversity", "avg_session_length", "session_returns")
    }
    row.update(
        {
            "updates_per_s": None,
            "updates": 0,
            "train_seconds": None,
            HR_AT_10: None,
            NDCG_AT_10: None,
            "curve": [],
            "curve_gain": None,
            "simulated_steps": int(getattr(policy, "simulated_steps", 0)),
            "wall_seconds": time.perf_counter() - t,
        }
    )
    ci = mean_ci(row["session_returns"], cfg.ci_level)
    log(
        f"{name:18s} seed {cfg.seed + seed_index}: return/session {ci['mean']:.3f} ± {ci['ci_high'] - ci['mean']:.3f}"
        f"  ({row['wall_seconds']:.0f}s, {row['simulated_steps']} simulated steps of planning; an oracle, not an "
        "agent)"
    )
    return row


def oracle_sessions(cfg) -> int:
    """How many of the agents' evaluation sessions the oracles play (the first ones)."""
    return min(cfg.oracle_sessions, cfg.eval_sessions)


def first_sessions(per_seed: dict, n: int) -> dict:
    """The per-seed rows with each seed's session returns cut to its first ``n`` sessions (those the oracles
    play too), for paired differences with the oracles."""
    return {
        name: [{**r, "session_returns": list(r["session_returns"][:n])} for r in rows]
        for name, rows in per_seed.items()
    }


def _returns(per_seed: dict, name: str, n: int | None = None) -> np.ndarray | None:
    rows = per_seed.get(name)
    if not rows:
        return None
    return np.concatenate([np.asarray(r["session_returns"][:n], np.float64) for r in rows])


def _diff(d: dict) -> dict:
    return {"diff": d["mean"], "ci95": [d["ci_low"], d["ci_high"]], "n": d["n"]}


def _share(d: dict) -> dict:
    return {
        "share": d["ratio"],
        "ci95": [d["ci_low"], d["ci_high"]],
        "n": d["n"],
        "identified": d["denominator_separated"],
    }


def headroom(returns: dict[str, np.ndarray], level: float = 0.95) -> dict:
    """From per-session returns on the same sessions (name -> (n,) array; the large model and both oracles, plus
    any hybrids): the headroom and the value of planning with their paired intervals, the headroom as a share of
    the large model's return, and each hybrid's closed share. {} without the large model or the lookahead."""
    large, look, myopic = returns.get("large-model"), returns.get(LOOKAHEAD), returns.get(MYOPIC)
    if large is None or look is None:
        return {}
    large_mean = float(np.mean(large))
    head = paired_diff(look, large, level)
    out = {
        "large_model": float(np.mean(large)),
        "lookahead": float(np.mean(look)),
        "headroom": _diff(head),
        "headroom_relative": head["mean"] / large_mean if large_mean > 0 else float("nan"),
        "closed_share": {},
    }
    if myopic is not None:
        out["myopic"] = float(np.mean(myopic))
        out["value_of_planning"] = _diff(paired_diff(look, myopic, level))
        out["myopic_over_large"] = _diff(paired_diff(myopic, large, level))
    for name in shares_of(returns):
        out["closed_share"][name] = _share(paired_ratio(returns[name] - large, look - large, level))
    return out


def main_headroom(per_seed: dict, level: float = 0.95) -> dict:
    """``headroom`` over every training seed's sessions pooled (seed i's agents against seed i's oracles, on the
    sessions of seed i the oracles played: the first ones)."""
    played = [len(r["session_returns"]) for n in ORACLES for r in per_seed.get(n, [])]
    n = min(played) if played else None
    names = ["large-model", *ORACLES, *shares_of(per_seed)]
    returns = {name: _returns(per_seed, name, n) for name in names}
    out = headroom({name: r for name, r in returns.items() if r is not None}, level)
    if out:
        out["sessions_per_seed"] = n
    return out


def judge_on(simulator, policies: dict, factories: dict, num_sessions: int, seed: int, hooks: dict | None = None):
    """name -> each session's greedy return in ``simulator``: the agents' ``policies`` and the oracles built by
    ``factories`` on the environment, all on the same ``num_sessions`` sessions. ``hooks`` (name -> a step hook)
    see the named policy's steps."""
    from recengine.agents.loop import evaluate
    from recengine.env import vector_env

    env = vector_env(simulator, num_sessions)
    out = {}
    for name, policy in policies.items():
        hook = (hooks or {}).get(name)
        out[name] = np.asarray(evaluate(policy, env, seed=seed, on_step=hook)["session_returns"], np.float64)
    for name, make in factories.items():
        hook = (hooks or {}).get(name)
        out[name] = np.asarray(evaluate(make(env), env, seed=seed, on_step=hook)["session_returns"], np.float64)
    return out


def without(simulator, **changes):
    """A copy of the fitted simulator whose dynamics (its SeqSimConfig) have ``changes``; the same fit otherwise."""
    return dataclasses.replace(simulator, config=dataclasses.replace(simulator.config, **changes))


def mechanisms_and_checks(setup: CompareSetup, policies: dict, log: Log = print) -> dict:
    """{"mechanisms": the headroom with each of ``MECHANISMS`` off, "mechanism_checks": each mechanism against the
    real train sessions (recengine.judging.mechanism_check)}; {} without the large model. The large model's
    simulated sessions in each variant give the simulated side of the checks."""
    from recengine.judging import mechanism_check as mc

    cfg = setup.settings
    if "large-model" not in policies:
        return {}
    sim = setup.simulator
    factories = oracle_factories(setup)
    seed, n = cfg.seed + 999, cfg.headroom_sessions
    rows, simulated = {}, {}
    for label, changes in {NO_MECHANISM_OFF: {}, **MECHANISMS}.items():
        t = time.perf_counter()
        variant = without(sim, **changes) if changes else sim
        recorder = mc.ClickRecorder(n)
        returns = judge_on(
            variant, {"large-model": policies["large-model"]}, factories, n, seed, {"large-model": recorder}
        )
        row = headroom(returns, cfg.ci_level)
        row["switched_off"] = changes
        rows[label] = row
        simulated[label] = mc.simulated_session_stats(recorder, sim.item_genres, seed=cfg.seed)
        log(
            f"headroom, {label} off: large model {row['large_model']:.3f}, myopic {row['myopic']:.3f}, lookahead "
            f"{row['lookahead']:.3f}, headroom {row['headroom']['diff']:+.3f} ({time.perf_counter() - t:.0f}s)"
        )
    t = time.perf_counter()
    checks = {
        "real": mc.real_session_stats(setup.split, sim.item_genres, seed=cfg.seed),
        "simulated_large_model": simulated,
        "fitted_session_model": {
            "mean_length": sim.session_model.mean_length(),
            "ks_distance": sim.fit_report.get("sessions", {}).get("fit", {}).get("ks_distance"),
        },
        "evolving_state": mc.evolving_state_check(
            sim, setup.split, cfg.mechanism_check_items, seed=cfg.seed, level=cfg.ci_level
        ),
    }
    log(f"mechanisms checked against the real train sessions ({time.perf_counter() - t:.0f}s)")
    return {"mechanisms": {"sessions": n, "rows": rows}, "mechanism_checks": checks}


# ------------------------------------------------------------------------------------------- the report
PLOT_FILE = "headroom.png"
"""return per session of the baselines, the large model, the hybrids and the oracles"""

PLOT_AGENTS = ("random", "popularity", "large-model")
"""the agents the plot always shows (when run), before the hybrids and the oracles"""


def label(name: str) -> str:
    """How the report names an agent or an oracle (oracles are marked so in every table and plot)."""
    return f"{name} (oracle: reads the simulator)" if name in ORACLES else name


def plot_returns(path: str, results: dict) -> bool:
    """Return per session with its 95% interval: random, popularity, the large model, each hybrid, the myopic and
    the lookahead oracle (the oracles in another colour, the headroom marked). False (nothing written) without
    the oracles."""
    oracles = results.get("oracles") or {}
    if not oracles:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    agents = results["agents"]
    names = [n for n in PLOT_AGENTS if n in agents] + shares_of(agents)
    rows = [(n, agents[n], "tab:blue") for n in names] + [
        (n, oracles[n], "tab:orange") for n in ORACLES if n in oracles
    ]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.4))
    for y, (_, entry, colour) in enumerate(rows):
        lo, hi = entry["return_ci95"]
        ax.errorbar(
            entry["avg_return"],
            y,
            xerr=[[entry["avg_return"] - lo], [hi - entry["avg_return"]]],
            fmt="o",
            color=colour,
            capsize=3,
        )
    ax.set_yticks(range(len(rows)), [("oracle: " + n[len("oracle-") :]) if n in ORACLES else n for n, _, _ in rows])
    ax.invert_yaxis()
    if "large-model" in agents and LOOKAHEAD in oracles:
        ax.axvspan(
            agents["large-model"]["avg_return"],
            oracles[LOOKAHEAD]["avg_return"],
            color="tab:orange",
            alpha=0.12,
            lw=0,
            label="headroom (lookahead oracle − large model)",
        )
        ax.legend(fontsize=8, loc="center left")
    ax.set_xlabel("clicks per simulated session (95% interval)")
    ax.set_title("Return per session (the oracles read the simulator: yardsticks, not agents)", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _ci(d: dict | None, pattern: str = "{:+.3f}") -> str:
    if not d or d.get("diff") is None or d["diff"] != d["diff"]:
        return "–"
    return f"{pattern.format(d['diff'])} [{pattern.format(d['ci95'][0])}, {pattern.format(d['ci95'][1])}]"


def _share_text(d: dict | None) -> str:
    if not d:
        return "–"
    if not d.get("identified"):
        return "not identified (the headroom's interval holds 0)"
    return f"{d['share']:.0%} [{d['ci95'][0]:.0%}, {d['ci95'][1]:.0%}]"


def _beyond_no_rl(agents: dict, shares: dict) -> list[str]:
    """ "name +d [lo, hi]" for each hybrid of `shares` with a paired difference from the no-RL baseline."""
    out = []
    for name in (n for n in shares if n not in NO_RL_SHARE):
        paired = (agents.get(name) or {}).get("paired", {})
        out += [f"{name} {_ci(paired[base])}" for base in NO_RL_SHARE if paired.get(base)]
    return out


def answer_lines(results: dict) -> list[str]:
    """The headroom part of "Does RL beat the large model?": the headroom, the value of planning, each hybrid's
    closed share in the main simulator and in every robustness check, and the plot."""
    gap = results.get("headroom") or {}
    if not gap.get("headroom"):
        return []
    rel = gap.get("headroom_relative")
    lines = [
        "How much is there to win? Two planners that read the simulator's own model (oracles: yardsticks that "
        "know each user's true state, never deployable agents) play the agents' sessions. **Headroom** = lookahead "
        "oracle − large model; **value of planning** = lookahead − myopic oracle; a hybrid's **closed share** = "
        "(hybrid − large model) / headroom, with its interval from the paired sessions.",
        "",
        f"- large model {gap['large_model']:.3f}, myopic oracle {gap.get('myopic', float('nan')):.3f}, lookahead "
        f"oracle {gap['lookahead']:.3f} clicks per session",
        f"- headroom {_ci(gap['headroom'])} clicks per session"
        + (f" ({rel:.0%} of the large model's return)" if rel == rel and rel is not None else ""),
        f"- of which the myopic oracle already wins {_ci(gap.get('myopic_over_large'))}; value of planning "
        f"{_ci(gap.get('value_of_planning'))}",
    ]
    if rel is not None and rel == rel and rel < 0.10:
        lines.append(
            "- the headroom is under 10% of the large model's return: in this simulator there is little for RL to win "
            'over the large model (see "Where the headroom comes from")'
        )
    shares = gap.get("closed_share") or {}
    robust = (results.get("robustness") or {}).get("variants", {})
    if shares:
        checks = ["main simulator", *[n for n, v in robust.items() if v.get("headroom", {}).get("closed_share")]]
        lines += ["", "| hybrid | " + " | ".join(checks) + " |", "|---|" + "---:|" * len(checks)]
        for name, share in shares.items():
            cells = [_share_text(share)] + [
                _share_text(robust[c]["headroom"]["closed_share"].get(name)) for c in checks[1:]
            ]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines += [
            "",
            "Closed share of the headroom (95% interval), per check; in the robustness checks the oracles play the "
            "variant simulator's sessions beside the agents."
            + (
                " large-model-logged is no RL: the large model with each user's logged items excluded, the part of "
                "a hybrid's share that needs no learning (hybrid-slateq excludes them too)."
                if any(n in NO_RL_SHARE for n in shares)
                else ""
            ),
        ]
        heads = [f"{c}: {_ci(robust[c]['headroom'].get('headroom'))}" for c in checks[1:]]
        if heads:
            lines.append("Headroom in the robustness checks: " + "; ".join(heads) + ".")
        beyond = _beyond_no_rl(results.get("agents") or {}, shares)
        if beyond:
            lines.append(
                "What RL adds beyond the no-RL exclusion (hybrid − large-model-logged, paired over every evaluation "
                "session of the main simulator): " + "; ".join(beyond) + "."
            )
    if gap.get("plot"):
        lines += ["", f"![{gap['plot']}]({gap['plot']})"]
    return lines + [""]


def _rate(x) -> str:
    return "–" if x is None or x != x else f"{x:.3f}"


def mechanism_section(results: dict) -> list[str]:
    """ "Where the headroom comes from": the headroom with each mechanism off, and each mechanism against the real
    train sessions."""
    gap = results.get("headroom") or {}
    mech, checks = gap.get("mechanisms"), gap.get("mechanism_checks")
    if not mech:
        return []
    lines = [
        "## Where the headroom comes from",
        "",
        f"The main simulator with one mechanism switched off at a time; the large model and both oracles (which "
        f"read the simulator: yardsticks, not agents) on the same {mech['sessions']} sessions.",
        "",
        "| switched off | large model | oracle-myopic | oracle-lookahead | headroom [95% CI] "
        "| value of planning [95% CI] |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, row in mech["rows"].items():
        lines.append(
            f"| {name} | {row['large_model']:.3f} | {row.get('myopic', float('nan')):.3f} | {row['lookahead']:.3f} | "
            f"{_ci(row['headroom'])} | {_ci(row.get('value_of_planning'))} |"
        )
    if checks:
        real, sim = checks["real"], checks["simulated_large_model"]
        main, fat, haz = (
            sim.get(NO_MECHANISM_OFF, {}),
            sim.get("genre fatigue", {}),
            sim.get("leave hazard after clicks", {}),
        )
        ev = checks.get("evolving_state", {})
        fitted = checks.get("fitted_session_model", {})
        lines += [
            "",
            "Each mechanism against the real train sessions it was fitted on (sittings split at 30 minutes of "
            "inactivity); simulated: the large model's sessions above.",
            "",
            "| mechanism | statistic | real | simulated | simulated, mechanism off |",
            "|---|---|---:|---:|---:|",
            f"| leave hazard after clicks (fitted) | mean events per session (ratings / clicks) | "
            f"{_rate(real['mean_length'])} (fit {_rate(fitted.get('mean_length'))}) | "
            f"{_rate(main.get('mean_length'))} | "
            f"{_rate(haz.get('mean_length'))} |",
            f"| | share of one-event sessions | {_rate(real['share_of_length_1'])} | "
            f"{_rate(main.get('share_of_length_1'))} | {_rate(haz.get('share_of_length_1'))} |",
            "| genre fatigue (assumed) | consecutive items sharing a genre | "
            f"{_rate(real['consecutive_same_genre'])} | "
            f"{_rate(main.get('consecutive_same_genre'))} | {_rate(fat.get('consecutive_same_genre'))} |",
            f"| | any two items of a session sharing a genre | {_rate(real['any_pair_same_genre'])} | "
            f"{_rate(main.get('any_pair_same_genre'))} | {_rate(fat.get('any_pair_same_genre'))} |",
            f"| quit after slates without a click (assumed) | slates per session | not in rating logs | "
            f"{_rate(main.get('slates_per_session'))} | "
            f"{_rate(sim.get('quit after slates without a click', {}).get('slates_per_session'))} |",
        ]
        if ev.get("items"):
            lines.append(
                f"| evolving state (fitted) | log P(real next item in the sitting): evolving − frozen state | "
                f"{ev['gain']:+.3f} [{ev['gain_ci95'][0]:+.3f}, {ev['gain_ci95'][1]:+.3f}] over {ev['items']} items "
                f"({ev['log_prob_evolving']:.2f} vs {ev['log_prob_frozen']:.2f}) | – | – |"
            )
    return lines + [""]
