"""Private copies of simulated sessions, stepped apart from the environment they were copied from (for planners).

    fork = env.fork(rows, copies=4, seed=7)     # 4 copies of each session in rows, with the planner's own draws
    w = fork.choice_weights()                   # (S, N) odds of a click on each item against no click
    rewards = fork.step(slates)                 # (S,) clicks of this step; 0 for a copy whose session has ended

A fork holds its own arrays (history, fatigue, consumed items, response-model state, streak, step count), so
stepping it never changes the environment it came from. Its random draws come from its own stream seeds and an
episode index no environment session reaches (``PLANNING_EPISODE`` and up): a planner that rolls a fork forward
samples possible futures, never the real session's own future draws. Sessions that end stay ended (no reset);
the fork steps only the copies still running.
"""

from __future__ import annotations

import numpy as np

__all__ = ["PLANNING_EPISODE", "SessionFork"]

PLANNING_EPISODE = 1 << 40
"""the first episode index of forks' random draws: a real session's episode counter (one per session of a slot)
never gets there, so a fork's (stream seed, episode, step) draws never coincide with a real session's"""


class SessionFork:
    """Copies of simulated sessions, stepped without autoreset (see the module docstring).

    Build one with ``SlateSessionVecEnv.fork``. ``num_sessions`` copies; ``done`` (S,) bool marks the copies whose
    session ended; ``returns`` (S,) float64 the clicks each copy has had since the fork.
    """

    def __init__(self, slots, slate_size: int, num_items: int):
        self._slots = slots
        self.slate_size = int(slate_size)
        self.num_items = int(num_items)
        self.num_sessions = int(slots.B)
        self.done = np.zeros(self.num_sessions, np.bool_)
        self.returns = np.zeros(self.num_sessions, np.float64)
        self._live = np.arange(self.num_sessions)  # the copies the slots hold, in the slots' row order
        self._closed = False

    @property
    def live(self) -> np.ndarray:
        """(R,) int64 the copies whose session is still running, in increasing order."""
        return self._live.copy()

    def choice_weights(self) -> np.ndarray:
        """(R, N) float64 for the live copies (rows in ``live`` order): each item's odds of a click against no
        click, so that P(click j | slate) = w_j / (1 + sum of the slate's w)."""
        if self._closed:
            raise RuntimeError("the fork took its last step")
        return self._slots.weights()

    def step(self, slates, *, last: bool = False) -> np.ndarray:
        """Show ``slates`` (R, k) to the live copies (rows in ``live`` order); returns (S,) this step's rewards
        (0 for the copies that had ended). Copies whose session ends here are dropped from ``live``. ``last``: the
        caller's last step, so the states after it are not computed (the fork can neither step nor give its
        weights again)."""
        if self._closed:
            raise RuntimeError("the fork took its last step")
        slates = np.ascontiguousarray(slates, dtype=np.int64)
        if slates.shape != (self._live.size, self.slate_size):
            raise ValueError(f"slates must have shape ({self._live.size}, {self.slate_size}), got {slates.shape}")
        rewards = np.zeros(self.num_sessions, np.float64)
        self._closed = last
        if self._live.size == 0:
            return rewards
        if last:
            self._slots.refresh_states = False
        _, _, _, r, term, trunc, _ = self._slots.step(slates)
        rewards[self._live] = r
        self.returns += rewards
        ended = term | trunc
        if ended.any():
            self.done[self._live[ended]] = True
            keep = np.flatnonzero(~ended)
            s = self._slots
            self._slots = s.subset(keep, s.stream_seed[keep], s.episode[keep])
            self._live = self._live[keep]
        return rewards
