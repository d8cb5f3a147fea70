"""The gymnasium plumbing both simulators share: the slate action space, the observation space, and the single and
vectorised environments around a simulator's session state.

A simulator supplies its *slots*: the state of B sessions and the kernels that advance them, with

    slots.B, slots.user (B,), slots.t (B,), slots.stream_seed (B,) uint64, slots.episode (B,), slots.ep_return (B,)
    slots.reset(mask, forced_user=None)        start a new session where mask is set (forced_user[b] >= 0 forces it)
    slots.obs(rows) -> dict                    fresh arrays: history (., L), user_id (.,), user_features (., F)
    slots.probs(slates) -> (B, k+1)            exact response probabilities (slate items, then no click)
    slots.step(slates) -> (probs, clicked, pos, rewards, terminated, truncated, extra_info)
    slots.weights() -> (B, N)                  every item's odds of a click against no click (planners read them)
    slots.subset(rows, stream_seed, episode)   independent copies of some sessions (``SlateSessionVecEnv.fork``)

``SlateSessionEnv`` (a ``gymnasium.Env``, one session at a time) and ``SlateSessionVecEnv`` (a
``gymnasium.vector.VectorEnv`` with same-step autoreset) hold everything else: seeding, argument checks, info
dicts, rendering. The simulators' classes only say which model, config and slots they use.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from recengine.env.session_fork import PLANNING_EPISODE, SessionFork
from recengine.padding import PAD_ID

__all__ = [
    "SlateSessionEnv",
    "SlateSessionVecEnv",
    "SlateSpace",
    "check_num_envs",
    "fresh_seed",
    "session_observation_space",
    "validate_slates",
]


class SlateSpace(gym.spaces.MultiDiscrete):
    """``slate_size`` DISTINCT item ids in [0, num_items): sample() draws without replacement.

    With ``batch=B`` it is the space of B such slates, shape (B, slate_size), each row distinct (the action space
    of a vectorised environment; ``gymnasium.vector.utils.batch_space`` of a SlateSpace builds one).
    """

    def __init__(self, num_items: int, slate_size: int, seed=None, batch: int | None = None):
        if slate_size > num_items:
            raise ValueError(f"slate_size {slate_size} > num_items {num_items}")
        shape = (slate_size,) if batch is None else (int(batch), slate_size)
        super().__init__(np.full(shape, num_items, dtype=np.int64), dtype=np.int64, seed=seed)
        self.num_items = int(num_items)
        self.slate_size = int(slate_size)
        self.batch = None if batch is None else int(batch)

    def sample(self, mask=None, probability=None) -> np.ndarray:
        if mask is not None or probability is not None:
            raise NotImplementedError("SlateSpace.sample does not take a mask or probabilities")
        if self.batch is None:
            return self.np_random.choice(self.num_items, self.slate_size, replace=False).astype(np.int64)
        rows = [self.np_random.choice(self.num_items, self.slate_size, replace=False) for _ in range(self.batch)]
        return np.stack(rows).astype(np.int64).reshape(self.shape)

    def contains(self, x) -> bool:
        if not super().contains(x):
            return False
        rows = np.asarray(x).reshape(-1, self.slate_size)
        return bool((np.diff(np.sort(rows, axis=1), axis=1) != 0).all())

    def __repr__(self) -> str:
        batch = "" if self.batch is None else f", batch={self.batch}"
        return f"SlateSpace(num_items={self.num_items}, slate_size={self.slate_size}{batch})"

    def __eq__(self, other) -> bool:
        return (
            isinstance(other, SlateSpace)
            and other.num_items == self.num_items
            and other.slate_size == self.slate_size
            and other.batch == self.batch
        )


@batch_space.register(SlateSpace)
def _batch_slate_space(space: SlateSpace, n: int = 1) -> SlateSpace:
    """B slates, each distinct (gymnasium's MultiDiscrete batching would lose the distinctness)."""
    if space.batch is not None:
        raise ValueError("a batched SlateSpace cannot be batched again")
    return SlateSpace(space.num_items, space.slate_size, batch=n)


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


def fresh_seed() -> int:
    """A stream seed from the operating system's entropy (what an unseeded reset starts from)."""
    return int(np.random.SeedSequence().entropy % (2**63))


def check_num_envs(num_envs) -> int:
    """``num_envs`` as an int >= 1 (TypeError for a non-integer, ValueError below 1)."""
    if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)):
        raise TypeError(f"num_envs: expected an int, got {type(num_envs).__name__} {num_envs!r}")
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    return int(num_envs)


def session_observation_space(model, config) -> gym.spaces.Dict:
    """One session's observation: ``history`` (L,) item ids left-padded with PAD_ID, ``user_id``,
    ``user_features`` (F,) float32 bounded by the model's own feature range."""
    N, U, F = model.num_items, model.num_users, model.user_features.shape[1]
    lo, hi = float(model.user_features.min()), float(model.user_features.max())
    return gym.spaces.Dict(
        {
            "history": gym.spaces.Box(PAD_ID, N - 1, shape=(config.history_len,), dtype=np.int64),
            "user_id": gym.spaces.Discrete(U),
            "user_features": gym.spaces.Box(lo, max(hi, lo + 1.0), shape=(F,), dtype=np.float32),
        }
    )


def _forced_users(user_ids, num_envs: int, num_users: int) -> np.ndarray:
    forced = np.asarray(user_ids)
    if forced.dtype.kind not in "iu" or forced.shape != (num_envs,):
        raise ValueError(f"user_ids must be ({num_envs},) integers, got {forced.dtype} {forced.shape}")
    if forced.min() < 0 or forced.max() >= num_users:
        raise IndexError(f"user_ids hold ids outside [0, {num_users})")
    return np.ascontiguousarray(forced, dtype=np.int64)


class SlateSessionEnv(gym.Env):
    """One simulated user session at a time (gymnasium API) around a simulator's slots of one session.

    - ``reset(seed=None, options=None) -> (obs, info)``. ``seed`` starts a new random stream (episode
      0 of stream ``seed``); a later ``reset()`` without a seed starts the next episode of the same
      stream. ``options={"user_id": u}`` forces the session's user (otherwise drawn from the user pool).
      info: ``{"user_id", "t"}``.
    - ``step(action) -> (obs, reward, terminated, truncated, info)``; ``action`` is a sequence of
      ``slate_size`` distinct integer item ids in [0, num_items) (ValueError / IndexError otherwise).
      reward is 1.0 on a click else 0.0. info: ``clicked_item`` (-1 when none), ``click_position``
      (-1 when none), ``click_prob`` (P(any click) of this slate), ``choice_probs`` ((k+1,), last =
      no click), ``user_id``, ``t`` (steps taken), and the simulator's own extra keys.
    - ``choice_probabilities(slate) -> (k+1,) float64``: the exact probabilities of the next response
      in the current state (item j of the slate, then no click).
    """

    metadata = {"render_modes": ["ansi"]}

    def __init__(self, model, config, slots, render_mode: str | None = None):
        super().__init__()
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}")
        self.model = model
        self.config = config
        self.render_mode = render_mode
        self._slots = slots
        self.observation_space = session_observation_space(model, config)
        self.action_space = SlateSpace(model.num_items, config.slate_size)
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
        o = self._slots.obs(slice(0, 1))
        return {
            "history": o["history"][0],
            "user_id": np.int64(o["user_id"][0]),
            "user_features": o["user_features"][0],
        }

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        s = self._slots
        if seed is not None or not self._started:
            s.stream_seed[0] = np.uint64((int(seed) if seed is not None else fresh_seed()) % 2**64)
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
        probs, clicked, pos, rewards, term, trunc, extra = self._slots.step(slate)
        self._done = bool(term[0] or trunc[0])
        info = {
            "clicked_item": int(clicked[0]),
            "click_position": int(pos[0]),
            "click_prob": float(1.0 - probs[0, -1]),
            "choice_probs": probs[0].copy(),
            "user_id": self.user_id,
            "t": int(self._slots.t[0]),
        }
        info.update({key: int(value[0]) for key, value in extra.items()})
        self._last = (slate[0], int(pos[0]))
        return self._obs(), float(rewards[0]), bool(term[0]), bool(trunc[0]), info

    def _render_history(self) -> str:
        """The history part of the ``ansi`` line (each simulator says how much of it to show)."""
        h = self._slots.history[0]
        return f"history={h[h >= 0].tolist()}"

    def render(self):
        if self.render_mode != "ansi":
            return None
        s = self._slots
        line = f"user {int(s.user[0])} t={int(s.t[0])} {self._render_history()}"
        if self._last is not None:
            slate, pos = self._last
            line += f" last slate={slate.tolist()} clicked={'none' if pos < 0 else int(slate[pos])}"
        return line


class SlateSessionVecEnv(gym.vector.VectorEnv):
    """B simulated sessions stepped together: a ``gymnasium.vector.VectorEnv`` with same-step autoreset.

    Slot ``b`` reset with ``seed=s`` behaves exactly like the single env's ``reset(seed=s + b)`` followed by
    ``reset()`` at each session end (same users, same clicks, same ends for the same slates).

    - ``reset(seed=None, options=None, user_ids=None) -> (obs, info)``: obs is a dict of batched arrays
      ``history (B, L) int64``, ``user_id (B,) int64``, ``user_features (B, F) float32``. ``seed`` is an int
      (slot b gets stream ``seed + b``) or a list of B ints/None (one stream each; None draws one).
      ``user_ids`` (B,) (or ``options={"user_ids": ...}``) forces the first session's users (later sessions draw
      from the user pool). info: ``{"user_id": (B,)}``.
    - ``step(slates) -> (obs, rewards, terminated, truncated, info)``: ``slates`` (B, k) distinct
      integer ids per row. ``rewards (B,) float32``, ``terminated``/``truncated (B,) bool``. A slot
      whose session ended is reset at once (``metadata["autoreset_mode"]`` is ``AutoresetMode.SAME_STEP``):
      ``obs`` holds its NEW session's first observation and ``info["final_obs"]`` the observation reached at the
      end (for every slot; equal to obs where nothing ended; ``info["_final_obs"]`` marks the slots that ended).
      info also holds (all (B,)): ``clicked_item`` (-1 none), ``click_position`` (-1 none), ``click_prob``
      (P(any click) of the slate), ``user_id`` (the user who saw the slate), ``episode_return`` and
      ``episode_length`` (of the session that ended; meaningful where terminated | truncated), ``choice_probs``
      (B, k+1), and the simulator's own extra keys.
    - ``choice_probabilities(slates) -> (B, k+1) float64``: exact response probabilities in the
      current states (item j of each slate, then no click).
    - ``single_observation_space`` / ``single_action_space``: one slot's (the single env's);
      ``observation_space`` / ``action_space``: the batched ones.
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, model, config, num_envs: int, slots):
        self.model = model
        self.config = config
        self.num_envs = num_envs
        self._slots = slots
        self.single_observation_space = session_observation_space(model, config)
        self.single_action_space = SlateSpace(model.num_items, config.slate_size)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
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

    def _stream_seeds(self, seed) -> np.ndarray:
        B = self.num_envs
        if seed is None or isinstance(seed, (int, np.integer)):
            base = fresh_seed() if seed is None else int(seed)
            return np.uint64(base % 2**64) + np.arange(B, dtype=np.uint64)
        seeds = list(seed)
        if len(seeds) != B:
            raise ValueError(f"seed: a list of seeds must hold one per env ({B}), got {len(seeds)}")
        return np.array([(fresh_seed() if s is None else int(s)) % 2**64 for s in seeds], dtype=np.uint64)

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict | None = None, user_ids=None):
        s = self._slots
        s.stream_seed[:] = self._stream_seeds(seed)
        if seed is None or isinstance(seed, (int, np.integer)):
            super().reset(seed=seed)
        s.episode[:] = 0
        if user_ids is None and options:
            user_ids = options.get("user_ids")
        forced = None if user_ids is None else _forced_users(user_ids, self.num_envs, self.model.num_users)
        s.reset(np.ones(self.num_envs, np.bool_), forced)
        self._started = True
        return s.obs(), {"user_id": s.user.copy()}

    def choice_probabilities(self, slates) -> np.ndarray:
        if not self._started:
            raise RuntimeError("call reset() before choice_probabilities()")
        return self._slots.probs(validate_slates(slates, self.num_envs, self.slate_size, self.num_items))

    def choice_weights(self) -> np.ndarray:
        """(B, N) float64 every item's odds of a click against no click in the current states: P(click j | slate)
        = w_j / (1 + sum of the slate's w) (0 for an item the user cannot click). What planners that may read the
        simulator's own model use (recengine.judging's oracles); an agent sees only the observations."""
        if not self._started:
            raise RuntimeError("call reset() before choice_weights()")
        return self._slots.weights()

    @property
    def session_index(self) -> np.ndarray:
        """(B,) int64 how many sessions each slot has finished since the last reset (0 during its first)."""
        return self._slots.episode.copy()

    @property
    def current_users(self) -> np.ndarray:
        """(B,) int64 the user of each slot's current session."""
        return self._slots.user.copy()

    def fork(self, rows, copies: int = 1, stream_seeds=None) -> SessionFork:
        """A ``recengine.env.session_fork.SessionFork`` of ``copies`` independent copies of each session in
        ``rows`` (copy i of row r at index r_index * copies + i), drawing from ``stream_seeds`` (one per copy; by
        default the slots' own seeds; the draws never coincide with a real session's since a fork's episode index
        starts at ``PLANNING_EPISODE``). Stepping the fork leaves this environment exactly as it was."""
        if not self._started:
            raise RuntimeError("call reset() before fork()")
        rows = np.asarray(rows)
        if rows.dtype.kind not in "iu" or rows.ndim != 1:
            raise ValueError(f"rows must be a 1-D integer array, got {rows.dtype} {rows.shape}")
        if rows.size and (rows.min() < 0 or rows.max() >= self.num_envs):
            raise IndexError(f"rows hold slots outside [0, {self.num_envs})")
        copies = check_num_envs(copies)
        idx = np.repeat(rows.astype(np.int64), copies)
        s = self._slots
        seeds = s.stream_seed[idx] if stream_seeds is None else np.asarray(stream_seeds, dtype=np.uint64)
        if seeds.shape != idx.shape:
            raise ValueError(f"stream_seeds must hold one seed per copy ({idx.size}), got shape {seeds.shape}")
        return SessionFork(s.subset(idx, seeds, PLANNING_EPISODE), self.slate_size, self.num_items)

    def step(self, slates) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if not self._started:
            raise RuntimeError("call reset() before step()")
        s = self._slots
        slates = validate_slates(slates, self.num_envs, self.slate_size, self.num_items)
        users = s.user.copy()
        probs, clicked, pos, rewards, term, trunc, extra = s.step(slates)
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
            "_final_obs": done.copy(),
            **extra,
        }
        if done.any():
            s.episode[done] += 1
            s.reset(done)
            obs = s.obs()
        else:
            obs = {k: v.copy() for k, v in final_obs.items()}
        return obs, rewards, term, trunc, info

    def close_extras(self, **kwargs: Any) -> None:
        """Nothing to release (no processes, no files): a closed env must be reset before it steps again."""
        self._started = False
