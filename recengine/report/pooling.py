"""Pooling a comparison's per-seed measurements: each agent's figures over seeds, paired differences from the
baselines session by session, learning-curve gains, with their confidence intervals (recengine.eval.stats)."""

from __future__ import annotations

import numpy as np

from recengine.eval.metrics import HR_AT_10, NDCG_AT_10
from recengine.eval.stats import mean_ci, paired_diff, t_value, z_value

STATISTICS_NOTE = (
    "return_ci95: mean ± z · s / sqrt(n) over the per-session returns of every seed's evaluation sessions "
    "(normal interval). paired: for each baseline, the mean over sessions of (agent − baseline) on the same "
    "sessions (same users and random draws: common random numbers), with its interval; a target counts as met "
    "only when that interval's lower bound is above 0. curve_gain: the last learning-curve point minus the "
    "first, paired over the curve's sessions, pooled over seeds. These intervals cover the evaluation noise "
    "given the trained policies; with several seeds, paired[...].seed_ci95 is the Student-t interval of the "
    "per-seed differences (the spread over training runs) and a target then needs both lower bounds above 0."
)

PAIRED_BASELINES = ("popularity", "large-model", "large-model-logged")
"""the baselines every agent's return is compared with, session by session"""


def _ci_fields(d: dict) -> dict:
    return {"diff": d["mean"], "stderr": d["stderr"], "ci95": [d["ci_low"], d["ci_high"]], "n": d["n"]}


def combine_seeds(rows: list[dict], level: float = 0.95) -> dict:
    """One agent's entry from its per-seed rows: the figures averaged over seeds, return per session with its
    interval over all sessions pooled, each seed's return and offline NDCG@10 (None for an agent without one),
    seed 0's learning curve, the curve gain pooled over seeds."""
    returns = np.concatenate([r["session_returns"] for r in rows])
    ci = mean_ci(returns, level)
    entry = {
        "avg_return": ci["mean"],
        "return_stderr": ci["stderr"],
        "return_ci95": [ci["ci_low"], ci["ci_high"]],
        "sessions": ci["n"],
        "seed_returns": [float(np.mean(r["session_returns"])) for r in rows],
    }
    for key in (
        "ctr",
        "coverage",
        "diversity",
        "avg_session_length",
        "updates_per_s",
        "train_seconds",
        HR_AT_10,
        NDCG_AT_10,
    ):
        values = [r[key] for r in rows if r[key] is not None]
        entry[key] = float(np.mean(values)) if values else None
    # each seed's offline NDCG@10 too: a limit such as "no more than 5% below the large model" holds per training
    # run, not only on the mean
    ndcgs = [r[NDCG_AT_10] for r in rows]
    entry["seed_" + NDCG_AT_10] = [float(v) for v in ndcgs] if all(v is not None for v in ndcgs) else None
    entry["updates"] = int(rows[0]["updates"])
    entry["curve"] = rows[0]["curve"]
    gains = [r["curve_gain"] for r in rows if r["curve_gain"] is not None]
    entry["curve_gain"] = pooled_gain(gains, level) if gains else None
    entry["wall_seconds"] = float(sum(r["wall_seconds"] for r in rows))
    return entry


def pooled_gain(gains: list[dict], level: float = 0.95) -> dict:
    """Independent paired differences (one per seed, each {"mean", "stderr", "n"}) pooled into the mean over
    all their sessions, with its interval: stderr² = Σ (n_i · stderr_i)² / n²."""
    n = sum(g["n"] for g in gains)
    mean = sum(g["mean"] * g["n"] for g in gains) / n
    stderr = float(np.sqrt(sum((g["stderr"] * g["n"]) ** 2 for g in gains))) / n
    half = z_value(level) * stderr
    return {"diff": mean, "stderr": stderr, "ci95": [mean - half, mean + half], "n": n}


def add_paired_differences(entries: dict, per_seed: dict, level: float = 0.95) -> None:
    """entry["paired"][baseline] = the agent's return minus the baseline's, session by session (seed i's
    agent against seed i's baseline on the same sessions), with its interval; for every baseline present. With
    several seeds also seed_diffs (one mean difference per seed) and seed_ci95, their Student-t interval: what
    another training run could give, which the sessions' interval does not cover."""
    for name, entry in entries.items():
        entry["paired"] = {}
        for base in PAIRED_BASELINES:
            if base == name or base not in per_seed:
                continue
            a = np.concatenate([r["session_returns"] for r in per_seed[name]])
            b = np.concatenate([r["session_returns"] for r in per_seed[base]])
            entry["paired"][base] = d = _ci_fields(paired_diff(a, b, level))
            if len(per_seed[name]) > 1:  # the spread over training seeds: one difference per seed, t interval
                diffs = [
                    float(np.mean(ra["session_returns"]) - np.mean(rb["session_returns"]))
                    for ra, rb in zip(per_seed[name], per_seed[base])
                ]
                half = t_value(level, len(diffs) - 1) * float(np.std(diffs, ddof=1)) / np.sqrt(len(diffs))
                d["seed_diffs"] = diffs
                d["seed_ci95"] = [float(np.mean(diffs)) - half, float(np.mean(diffs)) + half]
