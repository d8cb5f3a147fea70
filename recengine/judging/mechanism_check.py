"""Does each mechanism of the simulator hold against the real data it was fitted on?

The sequence-aware simulator (recengine.env.sequential_sim) has four mechanisms that make a slate matter beyond its
click. Each is set against a statistic of the real train-split sessions (events of one user split at 30 minutes of
inactivity, as the fit does) and the same statistic of simulated sessions:

* leave hazard after clicks (fitted): ratings per real sitting against clicks per simulated session (mean, median,
  share of one-event sessions);
* genre fatigue (assumed, not fitted): how often two consecutive items of a session share a genre, against how
  often two items of the same session do at any distance; fatigue makes simulated users switch genres, so its
  consecutive-pair rate falls below the no-fatigue one;
* evolving state (fitted: the response model): the mean log-probability of each real next item within a sitting
  under the response model's state after the sitting's earlier items, against the state frozen at the sitting's
  start (both over the items not yet consumed), paired per item with its interval;
* quit after slates without a click (assumed): rating logs hold no impressions, so nothing in the data checks it.

``ClickRecorder`` collects the simulated sessions (a step hook of the evaluation loop).
"""

from __future__ import annotations

import numpy as np
import torch

from recengine.data.sequences import LeaveOneOut, gather_csr, last_windows
from recengine.env.sessions import SESSION_GAP_SECONDS
from recengine.eval.stats import mean_ci, paired_diff

__all__ = [
    "ClickRecorder",
    "evolving_state_check",
    "real_sessions",
    "real_session_stats",
    "simulated_session_stats",
]


class ClickRecorder:
    """A step hook of ``recengine.agents.loop.evaluate``: the items clicked in each slot's first session, in order
    (the sessions greedy evaluation scores)."""

    def __init__(self, num_envs: int):
        self.sessions: list[list[int]] = [[] for _ in range(num_envs)]
        self.slates = np.zeros(num_envs, np.int64)
        """slates shown in each slot's first session"""
        self._alive = np.ones(num_envs, bool)

    def __call__(self, step) -> None:
        slates = step.slates.numpy()
        clicks = step.clicks.numpy()
        self.slates += self._alive
        for b in np.flatnonzero(self._alive & (clicks >= 0)):
            self.sessions[b].append(int(slates[b, clicks[b]]))
        self._alive &= ~step.done.numpy()


def real_sessions(split: LeaveOneOut, gap_seconds: float = SESSION_GAP_SECONDS):
    """The train events of ``split`` in user and time order, and where each sitting starts: (items (E,) int64,
    event index into split.histories (E,), session id (E,) int64, first event of its session (E,) int64 into the
    returned arrays)."""
    h = split.histories
    starts = h.offsets[:-1]
    counts = split.train_end - starts
    owner = np.repeat(np.arange(counts.size), counts)
    index = np.repeat(starts - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts) + np.arange(owner.size)
    t = h.timestamps[index]
    new = np.ones(owner.size, bool)
    new[1:] = (owner[1:] != owner[:-1]) | (np.diff(t) > gap_seconds)
    session = np.cumsum(new) - 1
    first = np.flatnonzero(new)[session]
    return h.items[index], index, session, first


def _share_genre(a: np.ndarray, b: np.ndarray, genres: np.ndarray) -> np.ndarray:
    """(P,) bool: items a[i] and b[i] have a genre in common (genres (N, G), > 0 = member)."""
    return ((genres[a] > 0) & (genres[b] > 0)).any(1)


def _genre_rates(sessions: list[np.ndarray], genres: np.ndarray, rng: np.random.Generator) -> dict:
    """Consecutive-pair and any-pair (two random distinct positions of the same session) genre-sharing rates."""
    firsts, seconds, ra, rb = [], [], [], []
    for s in sessions:
        if s.size < 2:
            continue
        firsts.append(s[:-1])
        seconds.append(s[1:])
        i = rng.integers(0, s.size, s.size - 1)
        j = (i + rng.integers(1, s.size, s.size - 1)) % s.size  # another position of the same session
        ra.append(s[i])
        rb.append(s[j])
    if not firsts:
        return {"consecutive_same_genre": float("nan"), "any_pair_same_genre": float("nan"), "pairs": 0}
    a, b = np.concatenate(firsts), np.concatenate(seconds)
    return {
        "consecutive_same_genre": float(_share_genre(a, b, genres).mean()),
        "any_pair_same_genre": float(_share_genre(np.concatenate(ra), np.concatenate(rb), genres).mean()),
        "pairs": int(a.size),
    }


def _length_stats(lengths: np.ndarray) -> dict:
    return {
        "sessions": int(lengths.size),
        "mean_length": float(lengths.mean()) if lengths.size else float("nan"),
        "median_length": float(np.median(lengths)) if lengths.size else float("nan"),
        "share_of_length_1": float((lengths == 1).mean()) if lengths.size else float("nan"),
    }


def real_session_stats(split: LeaveOneOut, genres: np.ndarray, seed: int = 0) -> dict:
    """Lengths (ratings per sitting) and genre-sharing rates of the real train sittings of ``split``."""
    items, _, session, _ = real_sessions(split)
    bounds = np.flatnonzero(np.diff(session)) + 1
    parts = np.split(items, bounds)
    lengths = np.array([p.size for p in parts], np.int64)
    return {**_length_stats(lengths), **_genre_rates(parts, genres, np.random.default_rng(seed))}


def simulated_session_stats(recorder: ClickRecorder, genres: np.ndarray, seed: int = 0) -> dict:
    """The same statistics for the simulated sessions a ``ClickRecorder`` saw: lengths in clicks over the
    sessions with at least one click (a real sitting has at least one rating), the genre-sharing rates, the share
    of sessions with a click and the mean slates per session."""
    parts = [np.asarray(s, np.int64) for s in recorder.sessions if s]
    lengths = np.array([p.size for p in parts], np.int64)
    out = {**_length_stats(lengths), **_genre_rates(parts, genres, np.random.default_rng(seed))}
    out["share_with_a_click"] = len(parts) / max(len(recorder.sessions), 1)
    out["slates_per_session"] = float(recorder.slates.mean()) if recorder.slates.size else float("nan")
    return out


@torch.no_grad()
def evolving_state_check(simulator, split: LeaveOneOut, max_items: int = 2000, seed: int = 0, level: float = 0.95):
    """The response model's mean log-probability of real next items within a sitting (every train item but a
    sitting's first, ``max_items`` of them drawn at random) from the state after the sitting's earlier items
    (evolving) and from the state at the sitting's start (frozen); the paired difference with its interval.
    Both exclude every item the user rated before."""
    items, index, _, first = real_sessions(split)
    h = split.histories
    inside = np.flatnonzero(np.arange(items.size) != first)
    if inside.size == 0:
        return {"items": 0}
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(inside, min(max_items, inside.size), replace=False))
    owner_start = np.searchsorted(h.offsets, index[pick], side="right") - 1
    starts = h.offsets[owner_start]
    ends_now, ends_start = index[pick], index[first[pick]]
    r = simulator.response
    offsets, ids = gather_csr(h.items, starts, ends_now)  # everything rated before the item
    consumed = torch.zeros(pick.size, r.num_items, dtype=torch.bool)
    rows = np.repeat(np.arange(pick.size), np.diff(offsets))
    consumed[torch.from_numpy(rows), torch.from_numpy(ids)] = True
    target = torch.from_numpy(items[pick])
    out = {}
    for name, ends in (("evolving", ends_now), ("frozen", ends_start)):
        windows, _ = last_windows(h.items, starts, ends, r.max_len)
        logp = r.next_item_log_probs(r.states(windows), consumed)
        out[name] = logp[torch.arange(pick.size), target].numpy()
    d = paired_diff(out["evolving"], out["frozen"], level)
    return {
        "items": int(pick.size),
        "log_prob_evolving": mean_ci(out["evolving"], level)["mean"],
        "log_prob_frozen": mean_ci(out["frozen"], level)["mean"],
        "gain": d["mean"],
        "gain_ci95": [d["ci_low"], d["ci_high"]],
    }
