"""User simulator: a multinomial-logit choice over a slate, genre fatigue, and sessions that end.

The model (one user ``u`` in one session; everything a ``UserModel`` and a ``SimConfig`` hold)::

    utility of item j   v_j = scale * (<p_u, q_j> + b_j + c_u)          # latent preferences
                              - fatigue_weight * <g_j, f>                # genres seen/clicked lately bore
                              - repeat_penalty * [j in history]          # already-clicked items bore
    no-click utility    v_0 = no_click_utility
    P(click j | slate)  = exp(v_j) / (exp(v_0) + sum_{j' in slate} exp(v_j'))
    P(no click)         = exp(v_0) / (same denominator)

``p_u``/``q_j`` are user/item factors, ``b_j``/``c_u`` item/user biases, ``g_j`` the item's genre
vector (normalised to sum 1), ``f`` the user's fatigue over genres (0 at the start of a session).
After each step (slate ``s``, clicked item ``c`` or none)::

    f <- fatigue_decay * f + fatigue_shown * mean_{j in s} g_j + fatigue_click * g_c   (last term only on a click)
    history <- history + [c]                     (only on a click; the last ``history_len`` clicks)
    m <- 0 on a click, else m + 1                (consecutive steps without a click)
    P(session ends) = min(1, quit_base + quit_growth * m)
    truncated when the step count reaches ``max_steps`` (and the session did not end)

reward = 1.0 on a click, else 0.0.

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

from dataclasses import dataclass, field, replace

import numpy as np
from numba import njit

from recengine.env.session_env import (
    SlateSessionEnv,
    SlateSessionVecEnv,
    SlateSpace,
    check_num_envs,
    validate_slates,
)

__all__ = ["PAD_ID", "SimConfig", "UserModel", "SlateSpace", "RecSimEnv", "VecRecSim", "validate_slates"]

#: padding id in the "history" observation (no item)
PAD_ID = -1

# purposes of the counter-based random draws
_DRAW_CHOICE = 0
_DRAW_QUIT = 1
_DRAW_USER = 2


@dataclass(frozen=True)
class SimConfig:
    """Dynamics of the simulated users (see the module docstring for the formulas)."""

    slate_size: int = 5
    """k: items per recommendation slate."""
    history_len: int = 20
    """L: clicked items kept in the observation (and checked for the repeat penalty)."""
    max_steps: int = 50
    """a session is truncated after this many steps."""
    affinity_scale: float = 1.0
    """multiplies <p_u, q_j> + b_j + c_u in the utility."""
    no_click_utility: float = 0.0
    """utility v_0 of the no-click option."""
    fatigue_weight: float = 1.0
    """utility lost per unit of fatigue on the item's genres."""
    fatigue_decay: float = 0.8
    """fatigue kept from one step to the next."""
    fatigue_shown: float = 0.2
    """fatigue added per step on the genres of the shown slate (averaged over the slate)."""
    fatigue_click: float = 0.5
    """fatigue added on the genres of the clicked item."""
    repeat_penalty: float = 2.0
    """utility lost by an item already in the user's history."""
    quit_base: float = 0.05
    """probability that the session ends after a step with a click."""
    quit_growth: float = 0.1
    """added end probability per consecutive step without a click."""

    def __post_init__(self):
        if self.slate_size < 1:
            raise ValueError(f"slate_size must be >= 1, got {self.slate_size}")
        if self.history_len < 1:
            raise ValueError(f"history_len must be >= 1, got {self.history_len}")
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")
        for name in ("quit_base", "quit_growth", "fatigue_decay"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v}")


@dataclass
class UserModel:
    """The simulated population: latent preferences, genres, side features, starting histories.

    Build one with ``recengine.env.calibrate.fit_user_model`` (matrix factorisation on real
    interactions) or ``recengine.env.calibrate.synthetic_user_model``; or directly from arrays.
    """

    user_factors: np.ndarray
    """(U, d) float64 p_u."""
    item_factors: np.ndarray
    """(N, d) float64 q_j."""
    item_bias: np.ndarray
    """(N,) float64 b_j."""
    item_genres: np.ndarray
    """(N, G) float64, each row non-negative; normalised here to sum 1 (rows of zeros stay zero)."""
    user_bias: np.ndarray | None = None
    """(U,) float64 c_u (zeros when None)."""
    user_features: np.ndarray | None = None
    """(U, F) float32 side features put in the observation (a single zero column when None)."""
    initial_histories: np.ndarray | None = None
    """(U, H) int64 clicked items a session starts from, oldest first, left-padded with -1 (empty when None)."""
    config: SimConfig = field(default_factory=SimConfig)
    """default dynamics for environments built on this model."""

    def __post_init__(self):
        self.user_factors = np.ascontiguousarray(self.user_factors, dtype=np.float64)
        self.item_factors = np.ascontiguousarray(self.item_factors, dtype=np.float64)
        U, d = self.user_factors.shape
        N = self.item_factors.shape[0]
        if self.item_factors.ndim != 2 or self.item_factors.shape[1] != d:
            raise ValueError(f"item_factors must be (N, {d}), got {self.item_factors.shape}")
        self.item_bias = np.ascontiguousarray(self.item_bias, dtype=np.float64).reshape(-1)
        if self.item_bias.shape != (N,):
            raise ValueError(f"item_bias must be ({N},), got {self.item_bias.shape}")
        g = np.asarray(self.item_genres, dtype=np.float64)
        if g.ndim != 2 or g.shape[0] != N or (g < 0).any():
            raise ValueError(f"item_genres must be a non-negative ({N}, G) matrix, got shape {g.shape}")
        total = g.sum(axis=1, keepdims=True)
        self.item_genres = np.ascontiguousarray(np.divide(g, total, out=np.zeros_like(g), where=total > 0))
        self.user_bias = (
            np.zeros(U)
            if self.user_bias is None
            else np.ascontiguousarray(self.user_bias, dtype=np.float64).reshape(-1)
        )
        if self.user_bias.shape != (U,):
            raise ValueError(f"user_bias must be ({U},), got {self.user_bias.shape}")
        self.user_features = (
            np.zeros((U, 1), np.float32)
            if self.user_features is None
            else np.ascontiguousarray(self.user_features, dtype=np.float32)
        )
        if self.user_features.ndim != 2 or self.user_features.shape[0] != U:
            raise ValueError(f"user_features must be ({U}, F), got {self.user_features.shape}")
        h = (
            np.full((U, 0), PAD_ID, np.int64)
            if self.initial_histories is None
            else np.ascontiguousarray(self.initial_histories, dtype=np.int64)
        )
        if h.ndim != 2 or h.shape[0] != U:
            raise ValueError(f"initial_histories must be ({U}, H), got {h.shape}")
        if h.size and (h.max() >= N or h.min() < PAD_ID):
            raise IndexError(f"initial_histories holds ids outside [-1, {N})")
        self.initial_histories = h

    @property
    def num_users(self) -> int:
        return self.user_factors.shape[0]

    @property
    def num_items(self) -> int:
        return self.item_factors.shape[0]

    @property
    def num_genres(self) -> int:
        return self.item_genres.shape[1]

    def affinity(self, user_ids=None) -> np.ndarray:
        """(len(user_ids), N) float64 <p_u, q_j> + b_j + c_u (before affinity_scale), all users when None."""
        users = np.arange(self.num_users) if user_ids is None else np.asarray(user_ids, dtype=np.int64)
        return self.user_factors[users] @ self.item_factors.T + self.item_bias[None, :] + self.user_bias[users, None]

    def choice_probabilities(
        self, user_ids, slates, histories=None, fatigue=None, config: SimConfig | None = None
    ) -> np.ndarray:
        """(B, k+1) exact response probabilities (slate items, then no click) for users in a given state.

        ``user_ids`` (B,); ``slates`` (B, k) distinct ids; ``histories`` (B, L) clicked items (-1 = none;
        default: each user's starting history, as at a session start); ``fatigue`` (B, G) (default 0).
        ``config`` defaults to the model's.
        """
        config = config or self.config
        users = np.asarray(user_ids)
        if users.dtype.kind not in "iu" or users.ndim != 1:
            raise ValueError(f"user_ids must be a 1-D integer array, got {users.dtype} {users.shape}")
        if users.size and (users.min() < 0 or users.max() >= self.num_users):
            raise IndexError(f"user_ids hold ids outside [0, {self.num_users})")
        users = np.ascontiguousarray(users, dtype=np.int64)
        B = users.shape[0]
        if np.ndim(slates) != 2:
            raise ValueError(f"slates must be a (B, k) array, got shape {np.shape(slates)}")
        slates = validate_slates(slates, B, np.shape(slates)[1], self.num_items)
        if histories is None:  # what a session starts from: the last history_len starting items
            H = self.initial_histories.shape[1]
            histories = self.initial_histories[users][:, max(0, H - config.history_len) :]
        histories = np.ascontiguousarray(histories, dtype=np.int64).reshape(B, -1)
        fatigue = (
            np.zeros((B, self.num_genres))
            if fatigue is None
            else np.ascontiguousarray(fatigue, dtype=np.float64).reshape(B, self.num_genres)
        )
        out = np.empty((B, slates.shape[1] + 1), np.float64)
        _choice_probs(
            users,
            histories,
            fatigue,
            slates,
            self.user_factors,
            self.item_factors,
            self.item_bias,
            self.user_bias,
            self.item_genres,
            config.affinity_scale,
            config.no_click_utility,
            config.fatigue_weight,
            config.repeat_penalty,
            out,
        )
        return out


# --------------------------------------------------------------------------- numba kernels

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)


@njit(cache=True, inline="always")
def _mix64(x):
    # splitmix64 finaliser
    x = (x ^ (x >> _S30)) * _M1
    x = (x ^ (x >> _S27)) * _M2
    return x ^ (x >> _S31)


@njit(cache=True)
def _uniform(seed, episode, step, purpose):
    """A uniform in [0, 1) from (stream seed, episode, step, purpose) — the same on every call."""
    h = _mix64(seed + _GOLDEN)
    h = _mix64(h ^ (np.uint64(episode) + _GOLDEN))
    h = _mix64(h ^ (np.uint64(step) + _GOLDEN))
    h = _mix64(h ^ (np.uint64(purpose) + _GOLDEN))
    return np.float64(h >> _S11) * (1.0 / 9007199254740992.0)


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
            r = _uniform(stream_seed[b], episode[b], 0, _DRAW_USER)
            u = user_pool[min(int(r * user_pool.shape[0]), user_pool.shape[0] - 1)]
        user[b] = u
        for i in range(L):
            src = H - L + i
            history[b, i] = init_hist[u, src] if src >= 0 else -1
        fatigue[b, :] = 0.0
        streak[b] = 0
        t[b] = 0
        ep_return[b] = 0.0


@njit(cache=True)
def _choice_probs(
    user, history, fatigue, slates, P, Q, item_bias, user_bias, genres, scale, v0, fatigue_weight, repeat_penalty, out
):
    """out[b, :k] = P(click slate[b, j]), out[b, k] = P(no click), for every slot b."""
    B, k = slates.shape
    d = P.shape[1]
    G = genres.shape[1]
    L = history.shape[1]
    v = np.empty(k + 1)
    for b in range(B):
        u = user[b]
        vmax = v0
        for j in range(k):
            it = slates[b, j]
            s = item_bias[it] + user_bias[u]
            for c in range(d):
                s += P[u, c] * Q[it, c]
            s *= scale
            tired = 0.0
            for g in range(G):
                tired += genres[it, g] * fatigue[b, g]
            s -= fatigue_weight * tired
            for i in range(L):
                if history[b, i] == it:
                    s -= repeat_penalty
                    break
            v[j] = s
            vmax = max(vmax, s)
        v[k] = v0
        total = 0.0
        for j in range(k + 1):
            v[j] = np.exp(v[j] - vmax)
            total += v[j]
        for j in range(k + 1):
            out[b, j] = v[j] / total


@njit(cache=True, inline="always")
def _respond_slot(
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
):
    """Draw slot b's response from probs (B, k+1); advance its fatigue, history, streak and return; record the
    click. Returns the clicked position (k: no click). Both simulators respond this way."""
    k = slates.shape[1]
    G = genres.shape[1]
    L = history.shape[1]
    r = _uniform(stream_seed[b], episode[b], t[b], _DRAW_CHOICE)
    pos = k  # no click unless r falls in a slate item's share
    acc = 0.0
    for j in range(k):
        acc += probs[b, j]
        if r < acc:
            pos = j
            break
    # fatigue: decay, then the shown genres (averaged over the slate), then the clicked genres
    for g in range(G):
        shown = 0.0
        for j in range(k):
            shown += genres[slates[b, j], g]
        fatigue[b, g] = fatigue_decay * fatigue[b, g] + fatigue_shown * shown / k
    if pos < k:
        it = slates[b, pos]
        for g in range(G):
            fatigue[b, g] += fatigue_click * genres[it, g]
        for i in range(L - 1):
            history[b, i] = history[b, i + 1]
        history[b, L - 1] = it
        streak[b] = 0
        clicked_item[b] = it
        click_pos[b] = pos
        rewards[b] = 1.0
    else:
        streak[b] += 1
        clicked_item[b] = -1
        click_pos[b] = -1
        rewards[b] = 0.0
    ep_return[b] += rewards[b]
    return pos


@njit(cache=True, inline="always")
def _leave_slot(b, p_quit, stream_seed, episode, t, max_steps, terminated, truncated):
    """Slot b's leaving draw (ends with probability p_quit) and step count (truncated at max_steps)."""
    q = _uniform(stream_seed[b], episode[b], t[b], _DRAW_QUIT)
    t[b] += 1
    terminated[b] = q < p_quit
    truncated[b] = (not terminated[b]) and t[b] >= max_steps


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
        _respond_slot(
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
        _leave_slot(b, p_quit, stream_seed, episode, t, max_steps, terminated, truncated)


# --------------------------------------------------------------------------- shared state


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
        _choice_probs(
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


# --------------------------------------------------------------------------- environments


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


def with_config(model: UserModel, **changes) -> UserModel:
    """A copy of model whose default SimConfig has the given fields changed."""
    return replace(model, config=replace(model.config, **changes))
