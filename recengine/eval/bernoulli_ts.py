"""Action distributions of the two Open Bandit Dataset policies, for evaluating one from the other's logs.

Bernoulli Thompson Sampling (BTS) draws a click rate for every item from its Beta(alpha, beta) posterior and
shows the ``len_list`` items with the largest draws, best first. Its probability of showing item a at position
p has no closed form; like obp's ``BernoulliTS.compute_batch_action_dist`` this computes it by Monte Carlo:
``n_sim`` rounds of drawing and ranking, counting how often each item lands at each position. obp loops over the
simulations in Python; here they are drawn in blocks, which gives the same counts as that loop on the same
generator. obp's generator is NumPy's legacy ``RandomState``, this one ``default_rng``, so the counts are a
different sample of the same distribution: equal to obp's up to Monte Carlo error.
The uniform random policy's distribution is exact: 1 / n_actions for every item at every position.

Both are context-free, so every round has the same distribution: the result is a read-only broadcast view of
shape (n_rounds, n_actions, len_list), which costs no memory.
"""

from __future__ import annotations

import numpy as np

__all__ = ["bernoulli_ts_action_dist", "uniform_action_dist"]

#: simulations drawn per block (bounds the memory of the Beta draws)
_BLOCK_SIMULATIONS = 8192


def bernoulli_ts_action_dist(
    alpha, beta, len_list: int, *, n_rounds: int = 1, n_sim: int = 100_000, random_state: int | None = 12345
) -> np.ndarray:
    """P(item a shown at position p) of Bernoulli Thompson Sampling with Beta(alpha, beta) per item, by
    ``n_sim`` Monte Carlo simulations from ``np.random.default_rng(random_state)``; (n_rounds, n_actions,
    len_list), each position's column summing to 1."""
    a = np.asarray(alpha, dtype=np.float64)
    b = np.asarray(beta, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape or a.size == 0:
        raise ValueError(f"alpha and beta must be 1-D of the same length, got shapes {a.shape} and {b.shape}")
    if not ((a > 0).all() and (b > 0).all() and np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("alpha and beta must be finite and > 0")
    n_actions = a.shape[0]
    if not 1 <= len_list <= n_actions:
        raise ValueError(f"len_list must be in [1, n_actions={n_actions}], got {len_list}")
    if n_sim < 1 or n_rounds < 1:
        raise ValueError(f"n_sim and n_rounds must be >= 1, got {n_sim} and {n_rounds}")
    rng = np.random.default_rng(random_state)
    counts = np.zeros((n_actions, len_list))
    for start in range(0, n_sim, _BLOCK_SIMULATIONS):
        m = min(_BLOCK_SIMULATIONS, n_sim - start)
        draws = rng.beta(a, b, size=(m, n_actions))
        top = (
            np.argpartition(-draws, len_list - 1, axis=1)[:, :len_list]
            if len_list < n_actions
            else np.tile(np.arange(n_actions), (m, 1))
        )
        ranked = np.take_along_axis(top, np.argsort(-np.take_along_axis(draws, top, axis=1), axis=1), axis=1)
        for pos in range(len_list):
            counts[:, pos] += np.bincount(ranked[:, pos], minlength=n_actions)
    return np.broadcast_to(counts / n_sim, (n_rounds, n_actions, len_list))


def uniform_action_dist(n_actions: int, len_list: int, *, n_rounds: int = 1) -> np.ndarray:
    """The uniform random policy: every item equally likely at every position, (n_rounds, n_actions, len_list)."""
    if n_actions < 1 or len_list < 1 or n_rounds < 1:
        raise ValueError(f"n_actions, len_list and n_rounds must be >= 1, got {n_actions}, {len_list}, {n_rounds}")
    return np.broadcast_to(np.full((n_actions, len_list), 1.0 / n_actions), (n_rounds, n_actions, len_list))
