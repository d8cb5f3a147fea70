"""The sequence-aware simulator: users who choose from a slate by a response model fitted to their real sequences.

One session of user ``u`` (all parameters in a ``SequentialUserModel`` and its ``SeqSimConfig``)::

    state                q = q(h): the response model's state of the user's history h (train history, then
                         this session's clicks; the last max_len items)
    next-item prior      pi_j = softmax over the unconsumed items of beta · (<q, e_j> + popularity_weight · b_j)
    slate weight         w_j = pi_j · exp(-fatigue_weight · <g_j, f>) for an unconsumed j; 0 for a consumed j
    P(click j | slate)   = w_j / (exp(c) + sum_{i in slate} w_i)
    P(no click)          = exp(c) / (same denominator)

i.e. utilities ``v_j = beta · (<q, e_j> + w_pop · b_j) - fatigue`` against a no-click utility
``v_0 = c + logsumexp_{unconsumed} beta · (<q, e> + w_pop · b)``: the odds of clicking a slate are ``e^-c`` times
the probability mass the response model puts on the slate. Items the user already consumed (the WHOLE history:
every train item and every click of the session) are never clicked, as ml-100k users do not rate a film twice.
``c`` (``no_click_offset``) is calibrated when the simulator is fitted (``recengine.env.fit_simulator``, by
``calibrate_no_click``).
``g_j`` is item j's genre vector (sum 1), ``f`` the session's genre fatigue::

    f <- fatigue_decay · f + fatigue_shown · mean_{j in slate} g_j + fatigue_click · g_clicked

Leaving: after the n-th click of a session the session ends with the fitted hazard ``h(n)``
(``recengine.env.sessions``; times ``hazard_scale``, 1 by default); after ``m`` consecutive slates without a
click it ends with probability ``min(1, no_click_quit · m)``; it is truncated at ``max_steps`` slates.
reward = 1.0 per click. ``evolving_state=False`` keeps q at the session's start (only to measure what the
evolving state is worth).

Observations: ``history`` (history_len,) the last history_len items of h (oldest first, left-padded with -1),
``user_id``, ``user_features``; the same API as ``recengine.env.VecRecSim`` / ``RecSimEnv`` (same-step
autoreset, the same ``info`` keys plus ``consumed_in_slate``). Randomness is counter-based
(``recengine.env.slot_kernels``, as in ``recengine.env.simulator``): slot b of ``SequentialVecSim.reset(seed=s)``
is ``SequentialSimEnv.reset(seed=s+b)``.
The response model's state is recomputed only for the sessions whose history changed (a click or a new session).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from numba import njit

from recengine.env.response_model import ResponseModel
from recengine.env.session_env import SlateSessionEnv, SlateSessionVecEnv, check_num_envs, validate_slates
from recengine.env.sessions import SessionModel
from recengine.env.slot_kernels import draw_user, leave_slot, respond_slot
from recengine.ops._checks import check_int, check_number
from recengine.padding import PAD_ID

__all__ = [
    "SeqSimConfig",
    "SequentialUserModel",
    "SequentialVecSim",
    "SequentialSimEnv",
    "calibrate_no_click",
    "item_odds",
]


@dataclass(frozen=True)
class SeqSimConfig:
    """Dynamics of the sequence-aware simulated users (formulas in the module docstring)."""

    slate_size: int = 5
    """k: items per slate."""
    history_len: int = 50
    """L: items of the history in the observation (the large model's context by default)."""
    max_steps: int = 50
    """a session is truncated after this many slates."""
    no_click_quit: float = 0.1
    """added end probability per consecutive slate without a click (rating logs hold no impressions, so this
    is an assumption, not a fit)."""
    fatigue_weight: float = 1.0
    """utility lost per unit of genre fatigue."""
    fatigue_decay: float = 0.8
    """fatigue kept from one slate to the next."""
    fatigue_shown: float = 0.2
    """fatigue added per slate on the genres shown (averaged over the slate)."""
    fatigue_click: float = 0.5
    """fatigue added on the genres of the clicked item."""
    hazard_scale: float = 1.0
    """multiplies the fitted leave hazard h(n) (capped at 1): 1 is the fit, 0 switches leaving after a click off
    (what the headroom analysis varies; the fit is the default)."""
    evolving_state: bool = True
    """the response model's state q(h) follows the session's clicks; False keeps every session at its starting
    state q (clicked items still count as consumed). Switched off only to measure what the evolving state is
    worth."""

    def __post_init__(self):
        for name in ("slate_size", "history_len", "max_steps"):
            check_int(name, getattr(self, name), minimum=1)
        check_number("hazard_scale", self.hazard_scale, minimum=0.0)
        for name in ("no_click_quit", "fatigue_decay"):
            check_number(name, getattr(self, name), minimum=0.0, maximum=1.0)
        for name in ("fatigue_weight", "fatigue_shown", "fatigue_click"):
            check_number(name, getattr(self, name), minimum=0.0)


@dataclass
class SequentialUserModel:
    """The fitted population: response model, each user's consumed items and starting history, genres, features,
    the session (leaving) model and the no-click offset c. Build with ``recengine.env.fit_simulator``."""

    response: ResponseModel
    train_offsets: np.ndarray
    """(U+1,) int64 CSR offsets of every user's TRAIN items (time order): their consumed items and start history."""
    train_items: np.ndarray
    """(E,) int64 the train items."""
    item_genres: np.ndarray
    """(N, G) non-negative; normalised to rows summing to 1 here (zero rows stay zero)."""
    session_model: SessionModel
    no_click_offset: float = 0.0
    user_features: np.ndarray | None = None
    """(U, F) float32 (a zero column when None)."""
    config: SeqSimConfig = field(default_factory=SeqSimConfig)
    fit_report: dict = field(default_factory=dict)
    """how it was fitted (session fit, calibration, response-model training), for reports."""
    population: np.ndarray | None = None
    """(P,) int64 the users a session draws when the environment is given no user_pool (the users the model was
    fitted on); None: every user."""

    def __post_init__(self):
        self.train_offsets = np.ascontiguousarray(self.train_offsets, dtype=np.int64)
        self.train_items = np.ascontiguousarray(self.train_items, dtype=np.int64)
        N, U = self.response.num_items, self.train_offsets.size - 1
        if (
            U < 1
            or self.train_offsets[0] != 0
            or self.train_offsets[-1] != self.train_items.size
            or np.any(np.diff(self.train_offsets) < 0)
        ):
            raise ValueError("train_offsets must be a CSR offset array over train_items")
        if self.train_items.size and (self.train_items.min() < 0 or self.train_items.max() >= N):
            raise IndexError(f"train_items hold ids outside [0, {N})")
        g = np.asarray(self.item_genres, dtype=np.float64)
        if g.ndim != 2 or g.shape[0] != N or not np.isfinite(g).all() or (g < 0).any():
            raise ValueError(f"item_genres must be a finite non-negative ({N}, G) matrix, got shape {g.shape}")
        total = g.sum(1, keepdims=True)
        self.item_genres = np.ascontiguousarray(np.divide(g, total, out=np.zeros_like(g), where=total > 0))
        self.user_features = (
            np.zeros((U, 1), np.float32)
            if self.user_features is None
            else np.ascontiguousarray(self.user_features, dtype=np.float32)
        )
        if self.user_features.ndim != 2 or self.user_features.shape[0] != U:
            raise ValueError(f"user_features must be ({U}, F), got {self.user_features.shape}")
        if not np.isfinite(self.user_features).all():
            raise ValueError("user_features: holds values that are not finite")
        # exp(c) must fit a float64 (and exp(-c) stay above 0): |c| <= 700
        self.no_click_offset = check_number("no_click_offset", self.no_click_offset, minimum=-700.0, maximum=700.0)
        if self.population is not None:
            pop = np.asarray(self.population)
            if pop.dtype.kind not in "iu" or pop.ndim != 1 or pop.size == 0:
                raise ValueError("population must be a non-empty 1-D array of integer user ids")
            if pop.min() < 0 or pop.max() >= U:
                raise IndexError(f"population holds ids outside [0, {U})")
            self.population = np.ascontiguousarray(pop, dtype=np.int64)
        self._cache: dict = {}

    @property
    def num_users(self) -> int:
        return self.train_offsets.size - 1

    @property
    def num_items(self) -> int:
        return self.response.num_items

    @property
    def num_genres(self) -> int:
        return self.item_genres.shape[1]

    def start_histories(self, length: int) -> np.ndarray:
        """(U, length) int64: each user's last ``length`` train items, oldest first, left-padded with -1."""
        out = np.full((self.num_users, length), PAD_ID, np.int64)
        counts = np.diff(self.train_offsets)
        owner = np.repeat(np.arange(self.num_users), counts)
        from_end = self.train_offsets[1:][owner] - np.arange(self.train_items.size)  # 1 = the user's last
        keep = from_end <= length
        out[owner[keep], length - from_end[keep]] = self.train_items[keep]
        return out

    def consumed_matrix(self) -> torch.Tensor:
        """(U, N) bool: the items each user consumed in the train split (cached)."""
        if "consumed" not in self._cache:
            owner = np.repeat(np.arange(self.num_users), np.diff(self.train_offsets))
            m = torch.zeros(self.num_users, self.num_items, dtype=torch.bool)
            m[torch.from_numpy(owner), torch.from_numpy(self.train_items)] = True
            self._cache["consumed"] = m
        return self._cache["consumed"]

    def start_states(self) -> tuple[torch.Tensor, torch.Tensor]:
        """((U, D) float32 q, (U,) float64 log-normaliser) of every user's starting history (cached)."""
        if "start" not in self._cache:
            q = self.response.states(self.start_histories(self.response.max_len))
            self._cache["start"] = (q, _log_normaliser(self.response, q, self.consumed_matrix()))
        return self._cache["start"]

    def with_popularity_weight(
        self, weight: float, *, recalibrate: bool = True, target_ctr: float | None = None
    ) -> SequentialUserModel:
        """A copy whose response model uses popularity_weight ``weight`` (the same weights), its no-click offset
        recalibrated to the same best-slate click rate (unless ``recalibrate`` is False)."""
        response = replace(self.response, popularity_weight=float(weight))
        out = replace(self, response=response, fit_report=dict(self.fit_report))
        if recalibrate:
            ctr = (
                target_ctr
                if target_ctr is not None
                else self.fit_report.get("calibration", {}).get("top_slate_ctr", 0.5)
            )
            out.no_click_offset = calibrate_no_click(out, ctr, users=self.population)
            out.fit_report["calibration"] = {"top_slate_ctr": ctr, "no_click_offset": out.no_click_offset}
        return out

    def choice_probabilities(self, user_ids, slates, histories=None, fatigue=None) -> np.ndarray:
        """(B, k+1) float64 response probabilities (slate items, then no click) at a session start (default) or in
        a given state: ``histories`` (B, L) the session's history (its last max_len items define q; every train
        item of the user and every item of ``histories`` counts as consumed), ``fatigue`` (B, G)."""
        users = np.asarray(user_ids)
        if users.dtype.kind not in "iu" or users.ndim != 1:
            raise ValueError(f"user_ids must be a 1-D integer array, got {users.dtype} {users.shape}")
        if users.size and (users.min() < 0 or users.max() >= self.num_users):
            raise IndexError(f"user_ids hold ids outside [0, {self.num_users})")
        users_t = torch.from_numpy(users.astype(np.int64))
        B = users.size
        if np.ndim(slates) != 2:
            raise ValueError(f"slates must be a (B, k) array, got shape {np.shape(slates)}")
        slates = validate_slates(slates, B, np.shape(slates)[1], self.num_items)
        consumed = self.consumed_matrix()[users_t].clone()
        if histories is None:
            q, lse = (t[users_t] for t in self.start_states())
        else:
            h = torch.as_tensor(np.asarray(histories, dtype=np.int64)).reshape(B, -1)
            rows, cols = torch.nonzero(h >= 0, as_tuple=True)
            consumed[rows, h[rows, cols]] = True
            q = self.response.states(h)
            lse = _log_normaliser(self.response, q, consumed)
        f = np.zeros((B, self.num_genres)) if fatigue is None else np.asarray(fatigue, np.float64).reshape(B, -1)
        return slate_probabilities(self, q, lse, consumed, torch.from_numpy(slates), torch.from_numpy(f)).numpy()


def calibrate_no_click(model: SequentialUserModel, top_slate_ctr: float, users=None) -> float:
    """The no-click offset c at which the response model's top-k unconsumed slate at a session start is clicked
    with mean probability ``top_slate_ctr`` over ``users`` (default all), fatigue 0. Closed form per user:
    P(click) = S_u / (e^c + S_u), S_u the model's probability mass on the slate; c by bisection on the mean."""
    if not 0.0 < top_slate_ctr < 1.0:
        raise ValueError(f"top_slate_ctr must be in (0, 1), got {top_slate_ctr}")
    users = np.arange(model.num_users) if users is None else np.asarray(users, dtype=np.int64)
    q, lse = (t[torch.from_numpy(users)] for t in model.start_states())
    consumed = model.consumed_matrix()[torch.from_numpy(users)]
    u = model.response.utilities(q).double().masked_fill(consumed, float("-inf"))
    k = min(model.config.slate_size, model.num_items)
    mass = torch.exp(u.topk(k, dim=1).values - lse.unsqueeze(1)).nan_to_num(0.0).sum(1).numpy()
    lo, hi = -50.0, 50.0
    for _ in range(100):  # the mean click rate falls as c grows
        mid = 0.5 * (lo + hi)
        ctr = float(np.mean(mass / (np.exp(mid) + mass)))
        lo, hi = (mid, hi) if ctr > top_slate_ctr else (lo, mid)
    return 0.5 * (lo + hi)


def _log_normaliser(response: ResponseModel, q: torch.Tensor, consumed: torch.Tensor) -> torch.Tensor:
    """(B,) float64 logsumexp of the utilities over the unconsumed items."""
    u = response.utilities(q).double().masked_fill(consumed, float("-inf"))
    return torch.logsumexp(u, dim=1)


def slate_probabilities(
    model: SequentialUserModel,
    q: torch.Tensor,
    lse: torch.Tensor,
    consumed: torch.Tensor,
    slates: torch.Tensor,
    fatigue: torch.Tensor,
) -> torch.Tensor:
    """(B, k+1) float64 P(click slate[b, j]) then P(no click), from states q (B, D), log-normalisers lse (B,),
    consumed (B, N) bool, slates (B, k) int64 and fatigue (B, G) float64 (the module docstring's formula)."""
    r = model.response
    with torch.no_grad():
        e = r.item_table()[slates]  # (B, k, D)
        u = r.beta * (torch.einsum("bkd,bd->bk", e, q) + r.effective_bias()[slates])
        genres = torch.from_numpy(model.item_genres)[slates]  # (B, k, G)
        tired = model.config.fatigue_weight * torch.einsum("bkg,bg->bk", genres, fatigue)
        logw = u.double() - lse.unsqueeze(1) - tired
        # a consumed item weighs 0 (also when every item is consumed and the normaliser is -inf)
        w = torch.where(torch.gather(consumed, 1, slates), torch.zeros_like(logw), torch.exp(logw))
        denom = np.exp(model.no_click_offset) + w.sum(1, keepdim=True)
        return torch.cat([w, torch.full_like(denom, np.exp(model.no_click_offset))], 1) / denom


def item_odds(
    model: SequentialUserModel, q: torch.Tensor, lse: torch.Tensor, consumed: torch.Tensor, fatigue: torch.Tensor
) -> torch.Tensor:
    """(B, N) float64 every item's weight w_j over exp(c), the odds of a click on j against no click, from states
    q (B, D), log-normalisers lse (B,), consumed (B, N) bool and fatigue (B, G) (``slate_probabilities``' weights,
    for the whole catalog): a slate's click probabilities are w_j / (1 + sum of the slate's w)."""
    r = model.response
    with torch.no_grad():
        u = r.utilities(q).double()
        tired = model.config.fatigue_weight * (fatigue @ torch.from_numpy(model.item_genres).T)
        w = torch.exp(u - lse.unsqueeze(1) - tired - model.no_click_offset)
        return w.masked_fill(consumed, 0.0)


@njit(cache=True)
def _respond(
    slates,
    probs,
    stream_seed,
    episode,
    history,
    fatigue,
    streak,
    clicks,
    t,
    ep_return,
    genres,
    hazard,
    no_click_quit,
    fatigue_decay,
    fatigue_shown,
    fatigue_click,
    max_steps,
    clicked_item,
    click_pos,
    rewards,
    terminated,
    truncated,
):
    """Draw each slot's response, then advance its fatigue, history, streak and the leaving draw."""
    k = slates.shape[1]
    for b in range(slates.shape[0]):
        pos = respond_slot(
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
        if pos < k:
            clicks[b] += 1
            p_quit = hazard[min(clicks[b], hazard.shape[0] - 1)]
        else:
            p_quit = min(1.0, no_click_quit * streak[b])
        leave_slot(b, p_quit, stream_seed, episode, t, max_steps, terminated, truncated)


@njit(cache=True)
def _draw_users(mask, stream_seed, episode, user_pool, out):
    for b in range(mask.shape[0]):
        if mask[b]:
            out[b] = draw_user(stream_seed[b], episode[b], user_pool)


class _SeqSlots:
    """The state of B sessions and how they advance (shared by the single and the vectorised env)."""

    def __init__(self, model: SequentialUserModel, config: SeqSimConfig, num_slots: int, user_pool):
        if config.slate_size > model.num_items:
            raise ValueError(f"slate_size {config.slate_size} > num_items {model.num_items}")
        if user_pool is None:
            user_pool = model.population if model.population is not None else np.arange(model.num_users)
        pool = np.asarray(user_pool)
        if pool.dtype.kind not in "iu" or pool.ndim != 1 or pool.size == 0:
            raise ValueError("user_pool must be a non-empty 1-D array of integer user ids")
        if pool.min() < 0 or pool.max() >= model.num_users:
            raise IndexError(f"user_pool holds ids outside [0, {model.num_users})")
        self.model, self.config = model, config
        self.user_pool = np.ascontiguousarray(pool, dtype=np.int64)
        B, N = num_slots, model.num_items
        self.B = B
        self.width = max(config.history_len, model.response.max_len)  # what the state and the obs need
        self.start_hist = model.start_histories(self.width)
        self.hazard = np.minimum(config.hazard_scale * model.session_model.hazard(config.max_steps), 1.0)
        self.stream_seed = np.zeros(B, np.uint64)
        self.episode = np.zeros(B, np.int64)
        self.user = np.zeros(B, np.int64)
        self.history = np.full((B, self.width), PAD_ID, np.int64)
        self.consumed = torch.zeros(B, N, dtype=torch.bool)
        self.fatigue = np.zeros((B, model.num_genres), np.float64)
        self.streak = np.zeros(B, np.int64)
        self.clicks = np.zeros(B, np.int64)
        self.t = np.zeros(B, np.int64)
        self.ep_return = np.zeros(B, np.float64)
        self.q = torch.zeros(B, model.response.encoder.dim)
        self.lse = torch.zeros(B, dtype=torch.float64)

    def reset(self, mask: np.ndarray, forced_user: np.ndarray | None = None) -> None:
        users = self.user.copy()
        _draw_users(mask, self.stream_seed, self.episode, self.user_pool, users)
        if forced_user is not None:
            users = np.where(forced_user >= 0, forced_user, users)
        rows = np.flatnonzero(mask)
        u = users[rows]
        self.user[rows] = u
        self.history[rows] = self.start_hist[u]
        rows_t, u_t = torch.from_numpy(rows), torch.from_numpy(u)
        self.consumed[rows_t] = self.model.consumed_matrix()[u_t]
        q, lse = self.model.start_states()
        self.q[rows_t] = q[u_t]
        self.lse[rows_t] = lse[u_t]
        self.fatigue[rows] = 0.0
        self.streak[rows] = 0
        self.clicks[rows] = 0
        self.t[rows] = 0
        self.ep_return[rows] = 0.0

    def obs(self, rows=slice(None)) -> dict:
        L = self.config.history_len
        return {
            "history": self.history[rows, self.width - L :].copy(),
            "user_id": self.user[rows].copy(),
            "user_features": np.take(self.model.user_features, self.user[rows], axis=0),
        }

    def probs(self, slates: np.ndarray) -> np.ndarray:
        return slate_probabilities(
            self.model, self.q, self.lse, self.consumed, torch.from_numpy(slates), torch.from_numpy(self.fatigue)
        ).numpy()

    def step(self, slates: np.ndarray):
        c = self.config
        probs = self.probs(slates)
        consumed_in_slate = torch.gather(self.consumed, 1, torch.from_numpy(slates)).sum(1).numpy()
        B = self.B
        clicked, pos = np.empty(B, np.int64), np.empty(B, np.int64)
        rewards = np.empty(B, np.float32)
        term, trunc = np.empty(B, np.bool_), np.empty(B, np.bool_)
        _respond(
            slates,
            probs,
            self.stream_seed,
            self.episode,
            self.history,
            self.fatigue,
            self.streak,
            self.clicks,
            self.t,
            self.ep_return,
            self.model.item_genres,
            self.hazard,
            c.no_click_quit,
            c.fatigue_decay,
            c.fatigue_shown,
            c.fatigue_click,
            c.max_steps,
            clicked,
            pos,
            rewards,
            term,
            trunc,
        )
        changed = np.flatnonzero(pos >= 0)
        if changed.size:  # only the sessions whose history changed get a new state
            rows = torch.from_numpy(changed)
            self.consumed[rows, torch.from_numpy(clicked[changed])] = True
            if self.refresh_states:
                self._refresh(changed, rows)
        return probs, clicked, pos, rewards, term, trunc, {"consumed_in_slate": consumed_in_slate}

    refresh_states = True
    """recompute the response-model state after a click (a planner's fork skips it after its last step)"""
    share_states = False
    """compute the state once per distinct history among the changed sessions (forks: many copies of a session
    click the same item)"""

    def _refresh(self, changed: np.ndarray, rows: torch.Tensor) -> None:
        r = self.model.response
        if self.config.evolving_state:
            windows = self.history[changed, self.width - r.max_len :]
            if self.share_states:
                distinct, inverse = np.unique(windows, axis=0, return_inverse=True)
                q = r.states(distinct)[torch.from_numpy(inverse.reshape(-1))]
            else:
                q = r.states(windows)
            self.q[rows] = q
        else:  # the state stays the session's first; the click only leaves the choice set
            q = self.q[rows]
        self.lse[rows] = _log_normaliser(r, q, self.consumed[rows])

    def weights(self) -> np.ndarray:
        """(B, N) float64 each item's odds against no click in the current states: P(click j | slate) =
        w_j / (1 + sum of the slate's w); 0 for a consumed item."""
        return item_odds(self.model, self.q, self.lse, self.consumed, torch.from_numpy(self.fatigue)).numpy()

    def subset(self, rows: np.ndarray, stream_seed: np.ndarray, episode) -> _SeqSlots:
        """Independent copies of the sessions in ``rows`` (repeats allowed), drawing from the given stream seeds
        and episode index (an int or one per row) from now on; nothing is shared with self but the model."""
        out = copy.copy(self)
        rows = np.asarray(rows, dtype=np.int64)
        rows_t = torch.from_numpy(rows)
        out.B = rows.size
        out.stream_seed = np.ascontiguousarray(stream_seed, dtype=np.uint64).copy()
        out.episode = np.array(np.broadcast_to(episode, rows.shape), dtype=np.int64)
        for name in ("user", "history", "fatigue", "streak", "clicks", "t", "ep_return"):
            setattr(out, name, getattr(self, name)[rows].copy())
        out.consumed, out.q, out.lse = self.consumed[rows_t].clone(), self.q[rows_t].clone(), self.lse[rows_t].clone()
        out.share_states = True
        return out


class SequentialVecSim(SlateSessionVecEnv):
    """B sessions stepped together: a ``gymnasium.vector.VectorEnv`` with the API of ``recengine.env.VecRecSim``
    (reset / step / choice_probabilities, same-step autoreset, ``info["final_obs"]``), with
    ``info["consumed_in_slate"]`` (B,): how many items of each slate the user had already consumed."""

    def __init__(self, model: SequentialUserModel, num_envs: int, config: SeqSimConfig | None = None, user_pool=None):
        num_envs = check_num_envs(num_envs)
        config = config if config is not None else model.config
        super().__init__(model, config, num_envs, _SeqSlots(model, config, num_envs, user_pool))


class SequentialSimEnv(SlateSessionEnv):
    """One session at a time (gymnasium API; the same contract as ``recengine.env.RecSimEnv``, plus
    ``info["consumed_in_slate"]``; registered as ``recengine/SeqRecSim-v0``)."""

    def __init__(
        self,
        model: SequentialUserModel,
        config: SeqSimConfig | None = None,
        user_pool=None,
        render_mode: str | None = None,
    ):
        config = config if config is not None else model.config
        super().__init__(model, config, _SeqSlots(model, config, 1, user_pool), render_mode)

    def _render_history(self) -> str:
        h = self._slots.history[0]
        return f"last items={h[h >= 0][-10:].tolist()}"
