"""The matrix-factorisation user model: latent preferences, a multinomial-logit choice over a slate, genre fatigue.

The model (one user ``u`` in one session; everything a ``UserModel`` and a ``SimConfig`` hold)::

    utility of item j   v_j = scale * (<p_u, q_j> + b_j + c_u)          # latent preferences
                              - fatigue_weight * <g_j, f>                # genres seen/clicked lately bore
                              - repeat_penalty * [j in history]          # already-clicked items bore
    no-click utility    v_0 = no_click_utility
    P(click j | slate)  = exp(v_j) / (exp(v_0) + sum_{j' in slate} exp(v_j'))
    P(no click)         = exp(v_0) / (same denominator)

``p_u``/``q_j`` are user/item factors, ``b_j``/``c_u`` item/user biases, ``g_j`` the item's genre
vector (normalised to sum 1), ``f`` the user's fatigue over genres (0 at the start of a session).
How fatigue, history and the no-click streak advance after a step is ``recengine.env.slot_kernels``'; when a
session ends (``quit_base``, ``quit_growth``, ``max_steps``) and the environments that step it are
``recengine.env.simulator``'s. ``choice_probs`` is the numba kernel of the choice probabilities, shared by
``UserModel.choice_probabilities`` and those environments.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from numba import njit

from recengine.env.session_env import validate_slates
from recengine.ops._checks import check_int, check_number
from recengine.padding import PAD_ID

__all__ = ["SimConfig", "UserModel", "choice_probs", "with_config"]


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
        for name in ("slate_size", "history_len", "max_steps"):
            check_int(name, getattr(self, name), minimum=1)
        for name in ("quit_base", "quit_growth", "fatigue_decay"):
            check_number(name, getattr(self, name), minimum=0.0, maximum=1.0)
        for name in ("fatigue_weight", "fatigue_shown", "fatigue_click", "repeat_penalty"):
            check_number(name, getattr(self, name), minimum=0.0)
        for name in ("affinity_scale", "no_click_utility"):
            check_number(name, getattr(self, name))


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
        choice_probs(
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


@njit(cache=True)
def choice_probs(
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


def with_config(model: UserModel, **changes) -> UserModel:
    """A copy of model whose default SimConfig has the given fields changed."""
    return replace(model, config=replace(model.config, **changes))
