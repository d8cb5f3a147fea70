"""The matrix-factorisation simulator under the gymnasium API: ``RecSimEnv`` (one session at a time) and
``VecRecSim`` (B sessions stepped together), over a ``recengine.env.user_model.UserModel``.

The users choose from a slate by the user model's multinomial logit (``recengine.env.user_model``); fatigue,
history and the no-click streak advance as ``recengine.env.slot_kernels`` says. A session ends after a step with
probability::

    P(session ends) = min(1, quit_base + quit_growth * m)      (m: consecutive steps without a click)

and is truncated when the step count reaches ``max_steps`` (and the session did not end). reward = 1.0 on a click,
else 0.0.

Randomness is counter-based: every draw is a hash of (stream seed, episode index, step, purpose),
so ``RecSimEnv`` and slot ``b`` of ``VecRecSim`` produce identical sessions when their stream seeds
agree (``VecRecSim.reset(seed=s)`` gives slot ``b`` the stream seed ``s + b``, exactly as
``RecSimEnv.reset(seed=s + b)``), episode after episode. Both use the same numba kernels.

Observations are dicts::

    "history"       int64 (L,)   the last L clicked item ids, oldest first, left-padded with -1 (PAD_ID)
    "user_id"       int64 ()     the user of this session
    "user_features" float32 (F,) the user's side features (from the data, or the synthetic builder)

Actions are slates: int arrays of ``slate_size`` distinct item ids in [0, num_items). The order
of the slate does not change the choice probabilities.
"""

from __future__ import annotations

import copy

import numpy as np
from numba import njit

from recengine.env.session_env import SlateSessionEnv, SlateSessionVecEnv, check_num_envs
from recengine.env.slot_kernels import draw_user, leave_slot, respond_slot
from recengine.env.user_model import SimConfig, UserModel, choice_probs
from recengine.padding import PAD_ID

__all__ = ["RecSimEnv", "VecRecSim"]


@njit(cache=True)
def _reset_slots(
    mask, forced_user, stream_seed, episode, user_pool, init_hist, user, history, fatigue, streak, t, ep_return
):
    """Start a new session in every slot where mask is set (user forced_user[b] when >= 0, else drawn)."""
    B, L = history.shape
    H = init_hist.shape[1]
    for b in range(B):
        if not mask[b]:
            continue
        if forced_user[b] >= 0:
            u = forced_user[b]
        else:
            u = draw_user(stream_seed[b], episode[b], user_pool)
        user[b] = u
        for i in range(L):
            src = H - L + i
            history[b, i] = init_hist[u, src] if src >= 0 else -1
        fatigue[b, :] = 0.0
        streak[b] = 0
        t[b] = 0
        ep_return[b] = 0.0


@njit(cache=True)
def _step_slots(
    slates,
    probs,
    stream_seed,
    episode,
    user,
    history,
    fatigue,
    streak,
    t,
    ep_return,
    genres,
    fatigue_decay,
    fatigue_shown,
    fatigue_click,
    quit_base,
    quit_growth,
    max_steps,
    clicked_item,
    click_pos,
    rewards,
    terminated,
    truncated,
):
    """Draw each slot's response from probs (B, k+1), update its state, decide whether it ends."""
    for b in range(slates.shape[0]):
        respond_slot(
            b,
            slates,
            probs,
            stream_seed,
            episode,
            t,
            history,
            fatigue,
            streak,
            ep_return,
            genres,
            fatigue_decay,
            fatigue_shown,
            fatigue_click,
            clicked_item,
            click_pos,
            rewards,
        )
        p_quit = min(1.0, quit_base + quit_growth * streak[b])
        leave_slot(b, p_quit, stream_seed, episode, t, max_steps, terminated, truncated)


class _Slots:
    """The state of B simulated sessions and the kernels that advance them (shared by both envs)."""

    def __init__(self, model: UserModel, config: SimConfig, num_slots: int, user_pool):
        self.model = model
        self.config = config
        if config.slate_size > model.num_items:
            raise ValueError(f"slate_size {config.slate_size} > num_items {model.num_items}")
        pool = np.arange(model.num_users) if user_pool is None else np.asarray(user_pool)
        if pool.dtype.kind not in "iu" or pool.ndim != 1 or pool.size == 0:
            raise ValueError("user_pool must be a non-empty 1-D array of integer user ids")
        if pool.min() < 0 or pool.max() >= model.num_users:
            raise IndexError(f"user_pool holds ids outside [0, {model.num_users})")
        self.user_pool = np.ascontiguousarray(pool, dtype=np.int64)
        B, L, G = num_slots, config.history_len, model.num_genres
        self.B = B
        self.stream_seed = np.zeros(B, np.uint64)
        self.episode = np.zeros(B, np.int64)
        self.user = np.zeros(B, np.int64)
        self.history = np.full((B, L), PAD_ID, np.int64)
        self.fatigue = np.zeros((B, G), np.float64)
        self.streak = np.zeros(B, np.int64)
        self.t = np.zeros(B, np.int64)
        self.ep_return = np.zeros(B, np.float64)

    def reset(self, mask, forced_user=None):
        forced = np.full(self.B, -1, np.int64) if forced_user is None else forced_user
        m = self.model
        _reset_slots(
            mask,
            forced,
            self.stream_seed,
            self.episode,
            self.user_pool,
            m.initial_histories,
            self.user,
            self.history,
            self.fatigue,
            self.streak,
            self.t,
            self.ep_return,
        )

    def obs(self, rows=slice(None)) -> dict:
        return {
            "history": self.history[rows].copy(),
            "user_id": self.user[rows].copy(),
            "user_features": np.take(self.model.user_features, self.user[rows], axis=0),
        }  # a copy

    def probs(self, slates) -> np.ndarray:
        m, c = self.model, self.config
        out = np.empty((self.B, c.slate_size + 1), np.float64)
        choice_probs(
            self.user,
            self.history,
            self.fatigue,
            slates,
            m.user_factors,
            m.item_factors,
            m.item_bias,
            m.user_bias,
            m.item_genres,
            c.affinity_scale,
            c.no_click_utility,
            c.fatigue_weight,
            c.repeat_penalty,
            out,
        )
        return out

    def weights(self) -> np.ndarray:
        """(B, N) float64 each item's odds against no click in the current states, exp(v_j - v_0): P(click j |
        slate) = w_j / (1 + sum of the slate's w)."""
        m, c = self.model, self.config
        v = c.affinity_scale * m.affinity(self.user) - c.fatigue_weight * (self.fatigue @ m.item_genres.T)
        seen = np.zeros((self.B, m.num_items), np.bool_)
        rows, cols = np.nonzero(self.history >= 0)
        seen[rows, self.history[rows, cols]] = True
        return np.exp(v - c.repeat_penalty * seen - c.no_click_utility)

    def subset(self, rows: np.ndarray, stream_seed: np.ndarray, episode) -> _Slots:
        """Independent copies of the sessions in ``rows`` (repeats allowed), drawing from the given stream seeds
        and episode index (an int or one per row) from now on; nothing is shared with self but the model."""
        out = copy.copy(self)
        rows = np.asarray(rows, dtype=np.int64)
        out.B = rows.size
        out.stream_seed = np.ascontiguousarray(stream_seed, dtype=np.uint64).copy()
        out.episode = np.array(np.broadcast_to(episode, rows.shape), dtype=np.int64)
        for name in ("user", "history", "fatigue", "streak", "t", "ep_return"):
            setattr(out, name, getattr(self, name)[rows].copy())
        return out

    def step(self, slates):
        c = self.config
        probs = self.probs(slates)
        B = self.B
        clicked = np.empty(B, np.int64)
        pos = np.empty(B, np.int64)
        rewards = np.empty(B, np.float32)
        term = np.empty(B, np.bool_)
        trunc = np.empty(B, np.bool_)
        _step_slots(
            slates,
            probs,
            self.stream_seed,
            self.episode,
            self.user,
            self.history,
            self.fatigue,
            self.streak,
            self.t,
            self.ep_return,
            self.model.item_genres,
            c.fatigue_decay,
            c.fatigue_shown,
            c.fatigue_click,
            c.quit_base,
            c.quit_growth,
            c.max_steps,
            clicked,
            pos,
            rewards,
            term,
            trunc,
        )
        return probs, clicked, pos, rewards, term, trunc, {}


class RecSimEnv(SlateSessionEnv):
    """One simulated user session at a time (gymnasium API; registered as ``recengine/RecSim-v0``).

    ``RecSimEnv(model, config=None, user_pool=None, render_mode=None)``

    - ``reset(seed=None, options=None) -> (obs, info)``. ``seed`` starts a new random stream (episode
      0 of stream ``seed``); a later ``reset()`` without a seed starts the next episode of the same
      stream. ``options={"user_id": u}`` forces the session's user (otherwise drawn from
      ``user_pool``, default all users). info: ``{"user_id", "t"}``.
    - ``step(action) -> (obs, reward, terminated, truncated, info)``; ``action`` is a sequence of
      ``slate_size`` distinct integer item ids in [0, num_items) (ValueError / IndexError otherwise).
      reward is 1.0 on a click else 0.0. info: ``clicked_item`` (-1 when none), ``click_position``
      (-1 when none), ``click_prob`` (P(any click) of this slate), ``choice_probs`` ((k+1,), last =
      no click), ``user_id``, ``t`` (steps taken).
    - ``choice_probabilities(slate) -> (k+1,) float64``: the exact probabilities of the next response
      in the current state (item j of the slate, then no click) — the formula in the module docstring.

    The gymnasium plumbing lives in ``recengine.env.session_env.SlateSessionEnv``.
    """

    def __init__(
        self, model: UserModel, config: SimConfig | None = None, user_pool=None, render_mode: str | None = None
    ):
        config = config if config is not None else model.config
        super().__init__(model, config, _Slots(model, config, 1, user_pool), render_mode)


class VecRecSim(SlateSessionVecEnv):
    """B simulated sessions stepped together (numba kernels, no Python loop over users): a
    ``gymnasium.vector.VectorEnv`` with same-step autoreset.

    ``VecRecSim(model, num_envs, config=None, user_pool=None)``

    Slot ``b`` reset with ``seed=s`` behaves exactly like ``RecSimEnv.reset(seed=s + b)`` followed by
    ``reset()`` at each session end (same users, same clicks, same ends for the same slates). The API (reset,
    step, info keys, ``choice_probabilities``, spaces) is ``recengine.env.session_env.SlateSessionVecEnv``'s.
    """

    def __init__(self, model: UserModel, num_envs: int, config: SimConfig | None = None, user_pool=None):
        num_envs = check_num_envs(num_envs)
        config = config if config is not None else model.config
        super().__init__(model, config, num_envs, _Slots(model, config, num_envs, user_pool))
