"""The lookahead oracle: a yardstick that plans each slate by rolling copies of the simulator's true session state
forward, to maximise the expected clicks of the rest of the session rather than of this step. Like the myopic
oracle (``recengine.judging.oracle_myopic``) it reads the simulator's own model, so it bounds what planning can
win in this simulator; it is never a deployable agent.

At every step, for each session it plans (by default every session's first, the one greedy evaluation scores):

1. candidates: ``candidates`` slates, the myopic oracle's (the k items with the largest click odds) first, then a
   genre-diverse one (greedy over the top ``shortlist`` x k items, each pick's log-odds lowered by its genre overlap
   with the picks before it), then perturbations (the myopic slate's 1 to k/2 weakest items swapped for random
   items ranked k+1 to ``shortlist`` x k);
2. value of a candidate = its exact click probability on this step + the mean, over ``rollouts`` simulated futures,
   of the clicks in the next ``horizon`` - 1 steps when the myopic oracle recommends from then on. The futures are
   copies of the session (``env.fork``) that draw from the planner's own stream seeds, never the real session's
   future draws, and the same seeds serve every candidate (common random numbers, so candidates are compared on the
   same futures);
3. the candidate of highest value is shown (the myopic one on ties).

This is one step of policy improvement over the myopic oracle (a rollout algorithm): with exact values it never does
worse than the myopic oracle in expectation; with sampled, truncated values it may, by the sampling noise, which is
why ``tests/judging/test_oracle_lookahead.py`` checks it on a simulator where planning matters. The budget is in
slates, simulated steps and seeds, never seconds: the figures do not depend on the machine's load. Planning costs
about candidates x rollouts x horizon simulator steps per real step of a planned session.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from recengine.agents.policy_base import Policy
from recengine.judging.oracle_myopic import check_bound, top_slates

__all__ = ["LookaheadBudget", "LookaheadOracle", "candidate_slates"]

_MIX = np.array([0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB, 0xD6E8FEB86659FD93], dtype=np.uint64)


@dataclass(frozen=True)
class LookaheadBudget:
    """How hard the lookahead oracle plans (module docstring): the cost per planned step is about
    candidates x rollouts x horizon simulated steps."""

    candidates: int = 4
    """slates compared per step (the myopic one, a genre-diverse one, then perturbations)"""
    rollouts: int = 2
    """simulated futures per candidate (the planner's seeds, shared by the candidates)"""
    horizon: int = 3
    """steps each candidate is judged over: its own, then horizon - 1 steps of the myopic oracle"""
    shortlist: int = 3
    """the diverse slate and the perturbations draw from the top shortlist x k items"""
    diversity: float = 1.0
    """the diverse slate's log-odds penalty per unit of genre overlap with the items picked before"""
    chunk: int = 512
    """sessions planned together (bounds the memory of the forks: chunk x candidates x rollouts x items)"""

    def __post_init__(self):
        for name in ("candidates", "rollouts", "horizon", "shortlist", "chunk"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if not self.diversity >= 0:
            raise ValueError(f"diversity must be >= 0, got {self.diversity}")


def candidate_slates(
    weights: np.ndarray, genres: np.ndarray, k: int, budget: LookaheadBudget, rng: np.random.Generator
) -> np.ndarray:
    """(B, C, k) int64 the candidate slates of the module docstring from click odds ``weights`` (B, N) and item
    ``genres`` (N, G); C = budget.candidates, the myopic slate first. Every slate holds distinct items."""
    B, N = weights.shape
    C = budget.candidates
    m = min(N, max(k, budget.shortlist * k))
    w = torch.from_numpy(np.ascontiguousarray(weights))
    short = w.topk(m, dim=1).indices  # (B, m), best first
    out = np.empty((B, C, k), np.int64)
    out[:, 0] = short[:, :k].numpy()
    if C == 1:
        return out
    # genre-diverse: greedy picks over the shortlist, log-odds minus diversity x overlap with the picks so far
    g = torch.from_numpy(np.ascontiguousarray(genres))[short]  # (B, m, G)
    score = torch.log(torch.gather(w, 1, short).clamp_min(1e-300))
    taken = torch.zeros(B, m, dtype=torch.bool)
    picked_genres = torch.zeros(B, g.shape[2], dtype=g.dtype)
    rows = torch.arange(B)
    picks = []
    for _ in range(k):
        s = score - budget.diversity * torch.einsum("bmg,bg->bm", g, picked_genres)
        j = s.masked_fill(taken, float("-inf")).argmax(1)
        taken[rows, j] = True
        picked_genres += g[rows, j]
        picks.append(short[rows, j])
    out[:, 1] = torch.stack(picks, 1).numpy()
    # perturbations: the myopic slate's weakest 1..k/2 items swapped for random items ranked k+1..m
    spare = m - k
    shortlist = short.numpy()
    for c in range(2, C):
        out[:, c] = out[:, 0]
        swaps = min(spare, int(rng.integers(1, max(k // 2, 1) + 1)))
        if swaps == 0:
            continue
        pick = np.argsort(rng.random((B, spare)), axis=1)[:, :swaps] + k  # ranks k..m-1, distinct per row
        out[:, c, k - swaps :] = np.take_along_axis(shortlist, pick, axis=1)
    return out


class LookaheadOracle(Policy):
    """Plans each slate by rollouts on copies of ``env``'s true session state (module docstring). ``env`` is the
    vectorised simulator it acts in; ``seed`` its own draws (candidates and simulated futures); with
    ``first_session_only`` (default) only each slot's first session since the reset is planned (the one greedy
    evaluation scores), later ones get the myopic slate. A yardstick that knows the users' true state, never an
    agent."""

    name = "oracle-lookahead"
    deterministic = True

    def __init__(self, env, budget: LookaheadBudget | None = None, *, seed: int = 0, first_session_only: bool = True):
        self.env = env
        self.budget = budget or LookaheadBudget()
        self.k = int(env.slate_size)
        self.seed = int(seed)
        self.first_session_only = first_session_only
        self.genres = np.asarray(env.model.item_genres, dtype=np.float64)
        self.rng = np.random.default_rng(self.seed)
        self.calls = 0
        self.simulated_steps = 0
        """copies stepped in simulated futures so far (the planning cost)"""

    def act(self, obs, explore: bool = False) -> torch.Tensor:
        check_bound(self.env, obs)
        weights = self.env.choice_weights()
        slates = top_slates(weights, self.k)
        rows = np.arange(self.env.num_envs)
        if self.first_session_only:
            rows = rows[self.env.session_index == 0]
        if self.budget.candidates > 1 and rows.size:
            for start in range(0, rows.size, self.budget.chunk):
                part = rows[start : start + self.budget.chunk]
                slates[part] = self._plan(part, weights[part])
        self.calls += 1
        return torch.from_numpy(slates)

    def _stream_seeds(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows) * C * R,) the futures' stream seeds: a hash of (seed, call, slot, rollout), the same for every
        candidate of a slot (common random numbers)."""
        C, R = self.budget.candidates, self.budget.rollouts
        slot = np.repeat(rows.astype(np.uint64), C * R)
        rollout = np.tile(np.arange(R, dtype=np.uint64), rows.size * C)
        with np.errstate(over="ignore"):
            h = np.full(slot.shape, np.uint64(self.seed), np.uint64) * _MIX[0]
            h ^= np.uint64(self.calls) * _MIX[1]
            h = (h ^ (h >> np.uint64(31))) * _MIX[2]
            h ^= slot * _MIX[3]
            h = (h ^ (h >> np.uint64(29))) * _MIX[0]
            h ^= rollout * _MIX[1]
            h = (h ^ (h >> np.uint64(32))) * _MIX[2]
        return h

    def _plan(self, rows: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """(len(rows), k) the best candidate slate of each session in ``rows`` (module docstring)."""
        b = self.budget
        C, R, k = b.candidates, b.rollouts, self.k
        cands = candidate_slates(weights, self.genres, k, b, self.rng)  # (a, C, k)
        odds = np.take_along_axis(weights[:, None, :], cands.reshape(len(rows), C * k)[:, None, :], axis=2)
        total = odds.reshape(len(rows), C, k).sum(2)
        first = total / (1.0 + total)  # the exact click probability of each candidate on this step
        fork = self.env.fork(rows, C * R, self._stream_seeds(rows))
        fork.step(np.repeat(cands.reshape(-1, k), R, axis=0), last=b.horizon == 1)
        after_first = fork.returns.copy()
        self.simulated_steps += fork.num_sessions
        for depth in range(1, b.horizon):
            live = fork.live
            if live.size == 0:
                break
            fork.step(top_slates(fork.choice_weights(), k), last=depth == b.horizon - 1)
            self.simulated_steps += live.size
        future = (fork.returns - after_first).reshape(len(rows), C, R).mean(2)
        value = first + future
        best = value.argmax(1)
        return cands[np.arange(len(rows)), best]
