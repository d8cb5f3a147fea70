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

import gymnasium as gym
import numpy as np
from numba import njit

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


class SlateSpace(gym.spaces.MultiDiscrete):
    """``slate_size`` DISTINCT item ids in [0, num_items): sample() draws without replacement."""

    def __init__(self, num_items: int, slate_size: int, seed=None):
        if slate_size > num_items:
            raise ValueError(f"slate_size {slate_size} > num_items {num_items}")
        super().__init__(np.full(slate_size, num_items, dtype=np.int64), dtype=np.int64, seed=seed)
        self.num_items = int(num_items)
        self.slate_size = int(slate_size)

    def sample(self, mask=None, probability=None) -> np.ndarray:
        if mask is not None or probability is not None:
            raise NotImplementedError("SlateSpace.sample does not take a mask or probabilities")
        return self.np_random.choice(self.num_items, self.slate_size, replace=False).astype(np.int64)

    def contains(self, x) -> bool:
        if not super().contains(x):
            return False
        x = np.asarray(x)
        return len(np.unique(x)) == x.size

    def __repr__(self) -> str:
        return f"SlateSpace(num_items={self.num_items}, slate_size={self.slate_size})"

    def __eq__(self, other) -> bool:
        return (
            isinstance(other, SlateSpace) and other.num_items == self.num_items and other.slate_size == self.slate_size
        )


def validate_slates(slates, batch: int, slate_size: int, num_items: int, name: str = "slates") -> np.ndarray:
    """Check a (batch, slate_size) array of distinct in-range integer item ids; return it as int64.

    Raises ValueError (not integers, wrong shape, an item repeated within a slate) or
    IndexError (an id outside [0, num_items)).
    """
    a = np.asarray(slates)
    if a.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer item ids, got dtype {a.dtype}")
    if a.shape != (batch, slate_size):
        raise ValueError(f"{name} must have shape ({batch}, {slate_size}), got {a.shape}")
    if a.size:
        lo, hi = a.min(), a.max()
        if lo < 0 or hi >= num_items:
            bad = lo if lo < 0 else hi
            row = int(np.argwhere((a < 0) | (a >= num_items))[0, 0])
            raise IndexError(f"{name}: item id {int(bad)} (row {row}) is out of range [0, {num_items})")
    a = a.astype(np.int64, copy=False)
    s = np.sort(a, axis=1)
    dup = s[:, 1:] == s[:, :-1]
    if dup.any():
        row, col = np.argwhere(dup)[0]
        raise ValueError(
            f"{name}: row {int(row)} shows item {int(s[row, col])} more than once; a slate must hold distinct items"
        )
    return np.ascontiguousarray(a)


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
    B, k = slates.shape
    G = genres.shape[1]
    L = history.shape[1]
    for b in range(B):
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
        p_quit = min(1.0, quit_base + quit_growth * streak[b])
        q = _uniform(stream_seed[b], episode[b], t[b], _DRAW_QUIT)
        t[b] += 1
        terminated[b] = q < p_quit
        truncated[b] = (not terminated[b]) and t[b] >= max_steps


# --------------------------------------------------------------------------- shared state


def _fresh_seed() -> int:
    return int(np.random.SeedSequence().entropy % (2**63))


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
        return probs, clicked, pos, rewards, term, trunc


def _observation_space(model: UserModel, config: SimConfig) -> gym.spaces.Dict:
    N, U, F = model.num_items, model.num_users, model.user_features.shape[1]
    lo, hi = float(model.user_features.min()), float(model.user_features.max())
    return gym.spaces.Dict(
        {
            "history": gym.spaces.Box(PAD_ID, N - 1, shape=(config.history_len,), dtype=np.int64),
            "user_id": gym.spaces.Discrete(U),
            "user_features": gym.spaces.Box(lo, max(hi, lo + 1.0), shape=(F,), dtype=np.float32),
        }
    )


# --------------------------------------------------------------------------- environments


class RecSimEnv(gym.Env):
    """One simulated user session at a time (gymnasium API).

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
    """

    metadata = {"render_modes": ["ansi"]}

    def __init__(
        self, model: UserModel, config: SimConfig | None = None, user_pool=None, render_mode: str | None = None
    ):
        super().__init__()
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}")
        self.model = model
        self.config = config if config is not None else model.config
        self.render_mode = render_mode
        self._slots = _Slots(model, self.config, 1, user_pool)
        self.observation_space = _observation_space(model, self.config)
        self.action_space = SlateSpace(model.num_items, self.config.slate_size)
        self._started = False
        self._done = False
        self._last = None

    @property
    def slate_size(self) -> int:
        return self.config.slate_size

    @property
    def num_items(self) -> int:
        return self.model.num_items

    @property
    def user_id(self) -> int:
        return int(self._slots.user[0])

    def _obs(self) -> dict:
        o = self._slots.obs(0)
        o["user_id"] = np.int64(o["user_id"])
        return o

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        s = self._slots
        if seed is not None:
            s.stream_seed[0] = np.uint64(int(seed) % 2**64)
            s.episode[0] = 0
        elif not self._started:
            s.stream_seed[0] = np.uint64(_fresh_seed())
            s.episode[0] = 0
        else:
            s.episode[0] += 1
        self._started = True
        forced = np.full(1, -1, np.int64)
        if options and options.get("user_id") is not None:
            u = int(options["user_id"])
            if not 0 <= u < self.model.num_users:
                raise IndexError(f"options['user_id'] {u} is out of range [0, {self.model.num_users})")
            forced[0] = u
        s.reset(np.ones(1, np.bool_), forced)
        self._done = False
        self._last = None
        return self._obs(), {"user_id": self.user_id, "t": 0}

    def _check(self, action) -> np.ndarray:
        a = np.asarray(action)
        if a.ndim != 1:
            raise ValueError(f"action must be a 1-D slate of {self.slate_size} item ids, got shape {a.shape}")
        return validate_slates(a[None, :], 1, self.slate_size, self.num_items, name="action")

    def choice_probabilities(self, slate) -> np.ndarray:
        """(k+1,) exact P(click slate[j]) for each j, then P(no click), in the current state."""
        if not self._started:
            raise RuntimeError("call reset() before choice_probabilities()")
        return self._slots.probs(self._check(slate))[0]

    def step(self, action):
        if not self._started:
            raise RuntimeError("call reset() before step()")
        if self._done:
            raise RuntimeError("the session has ended; call reset()")
        slate = self._check(action)
        probs, clicked, pos, rewards, term, trunc = self._slots.step(slate)
        self._done = bool(term[0] or trunc[0])
        info = {
            "clicked_item": int(clicked[0]),
            "click_position": int(pos[0]),
            "click_prob": float(1.0 - probs[0, -1]),
            "choice_probs": probs[0].copy(),
            "user_id": self.user_id,
            "t": int(self._slots.t[0]),
        }
        self._last = (slate[0], int(pos[0]))
        return self._obs(), float(rewards[0]), bool(term[0]), bool(trunc[0]), info

    def render(self):
        if self.render_mode != "ansi":
            return None
        s = self._slots
        line = f"user {int(s.user[0])} t={int(s.t[0])} history={s.history[0][s.history[0] >= 0].tolist()}"
        if self._last is not None:
            slate, pos = self._last
            line += f" last slate={slate.tolist()} clicked={'none' if pos < 0 else int(slate[pos])}"
        return line


class VecRecSim:
    """B simulated sessions stepped together (numba kernels, no Python loop over users).

    ``VecRecSim(model, num_envs, config=None, user_pool=None)``

    Slot ``b`` reset with ``seed=s`` behaves exactly like ``RecSimEnv.reset(seed=s + b)`` followed by
    ``reset()`` at each session end (same users, same clicks, same ends for the same slates).

    - ``reset(seed=None, user_ids=None) -> (obs, info)``: obs is a dict of batched arrays
      ``history (B, L) int64``, ``user_id (B,) int64``, ``user_features (B, F) float32``.
      ``user_ids`` (B,) forces the first session's users (later sessions draw from ``user_pool``).
      info: ``{"user_id": (B,)}``.
    - ``step(slates) -> (obs, rewards, terminated, truncated, info)``: ``slates`` (B, k) distinct
      integer ids per row. ``rewards (B,) float32``, ``terminated``/``truncated (B,) bool``. A slot
      whose session ended is reset at once (same-step autoreset): ``obs`` holds its NEW session's
      first observation and ``info["final_obs"]`` the observation reached at the end (for every slot;
      equal to obs where nothing ended). info also holds (all (B,)): ``clicked_item`` (-1 none),
      ``click_position`` (-1 none), ``click_prob`` (P(any click) of the slate), ``user_id`` (the user
      who saw the slate), ``episode_return`` and ``episode_length`` (of the session that ended;
      meaningful where terminated | truncated), and ``choice_probs`` (B, k+1).
    - ``choice_probabilities(slates) -> (B, k+1) float64``: exact response probabilities in the
      current states (item j of each slate, then no click).
    - ``observation_space`` / ``action_space``: the spaces of ONE slot (same as RecSimEnv's).
    """

    def __init__(self, model: UserModel, num_envs: int, config: SimConfig | None = None, user_pool=None):
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)):
            raise TypeError(f"num_envs: expected an int, got {type(num_envs).__name__} {num_envs!r}")
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.model = model
        self.config = config if config is not None else model.config
        self.num_envs = int(num_envs)
        self._slots = _Slots(model, self.config, self.num_envs, user_pool)
        self.observation_space = _observation_space(model, self.config)
        self.action_space = SlateSpace(model.num_items, self.config.slate_size)
        self._started = False

    @property
    def slate_size(self) -> int:
        return self.config.slate_size

    @property
    def num_items(self) -> int:
        return self.model.num_items

    def get_obs(self) -> dict:
        """The current observations (fresh arrays)."""
        return self._slots.obs()

    def reset(self, seed: int | None = None, user_ids=None):
        s = self._slots
        base = _fresh_seed() if seed is None else int(seed)
        s.stream_seed[:] = np.uint64(base % 2**64) + np.arange(self.num_envs, dtype=np.uint64)
        s.episode[:] = 0
        forced = None
        if user_ids is not None:
            forced = np.asarray(user_ids)
            if forced.dtype.kind not in "iu" or forced.shape != (self.num_envs,):
                raise ValueError(f"user_ids must be ({self.num_envs},) integers, got {forced.dtype} {forced.shape}")
            if forced.min() < 0 or forced.max() >= self.model.num_users:
                raise IndexError(f"user_ids hold ids outside [0, {self.model.num_users})")
            forced = np.ascontiguousarray(forced, dtype=np.int64)
        s.reset(np.ones(self.num_envs, np.bool_), forced)
        self._started = True
        return s.obs(), {"user_id": s.user.copy()}

    def choice_probabilities(self, slates) -> np.ndarray:
        if not self._started:
            raise RuntimeError("call reset() before choice_probabilities()")
        return self._slots.probs(validate_slates(slates, self.num_envs, self.slate_size, self.num_items))

    def step(self, slates):
        if not self._started:
            raise RuntimeError("call reset() before step()")
        s = self._slots
        slates = validate_slates(slates, self.num_envs, self.slate_size, self.num_items)
        users = s.user.copy()
        probs, clicked, pos, rewards, term, trunc = s.step(slates)
        done = term | trunc
        final_obs = s.obs()
        info = {
            "clicked_item": clicked,
            "click_position": pos,
            "click_prob": 1.0 - probs[:, -1],
            "choice_probs": probs,
            "user_id": users,
            "episode_return": s.ep_return.copy(),
            "episode_length": s.t.copy(),
            "final_obs": final_obs,
        }
        if done.any():
            s.episode[done] += 1
            s.reset(done)
            obs = s.obs()
        else:
            obs = {k: v.copy() for k, v in final_obs.items()}
        return obs, rewards, term, trunc, info


def with_config(model: UserModel, **changes) -> UserModel:
    """A copy of model whose default SimConfig has the given fields changed."""
    return replace(model, config=replace(model.config, **changes))
