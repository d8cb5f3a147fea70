"""Prioritized experience replay: columnar ring-buffer storage over a C++ sum-tree and min-tree.

The trees, the sampling, the gather and the n-step returns run in the replay family's C++ kernels
(csrc/replay/), reached through recengine._native.cpu_ops() like every other CPU op, so
torch.set_num_threads governs their OpenMP loops.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import threading
from collections.abc import Mapping
from types import ModuleType

import torch

from recengine._atomic import atomic_path
from recengine._native import as_array, cpu_ops, empty_with_huge_pages
from recengine.ops._checks import check_int, check_number

_FORMAT_VERSION = 1


def _zeros(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """torch.zeros, with a large buffer's memory advised onto huge pages before the first touch."""
    return empty_with_huge_pages(shape, dtype=dtype).zero_()


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def _tensordict() -> ModuleType:
    """The tensordict package (the optional `tensordict` extra), imported on first use."""
    try:
        return importlib.import_module("tensordict")
    except ModuleNotFoundError as exc:
        raise ImportError(
            "PrioritizedReplay: TensorDict input/output needs the tensordict package; install it "
            "with `pip install 'recengine[tensordict]'`"
        ) from exc


def _columns_of(data: object) -> dict:
    """The top-level {key: value} of a TensorDict (or any mapping) given to `add`."""
    if isinstance(data, Mapping):
        return dict(data)
    td = _tensordict()
    if not td.is_tensor_collection(data):
        raise TypeError(f"data: expected a TensorDict or a mapping of columns, got {type(data).__name__}")
    return {key: data.get(key) for key in data.keys()}


def _dtype_from_name(name: str) -> torch.dtype:
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"unknown dtype {name!r} in the saved replay")
    return dtype


class PrioritizedReplay:
    """Prioritized experience replay (Schaul et al. 2016, proportional variant) with n-step returns.

    Storage is one tensor per field, ``(capacity, *shape)``, written as a ring. Priorities live in a
    float64 sum-tree (sampling) and min-tree (largest importance weight) in C++: one call per batch,
    with the GIL released; internal nodes are always recomputed from their children, so sums do not
    drift. The stored leaf of item i is ``p_i ** alpha``; ``P(i) = p_i^alpha / sum_j p_j^alpha``.

    Args:
        capacity: number of transitions kept; the oldest is overwritten first.
        fields: ``{name: (shape, dtype)}`` of one transition (shape without the batch dim). Must contain
            ``"reward"`` and ``"done"`` of shape ``()`` (done: bool or a float 0/1); any dtype NumPy knows.
        alpha: priority exponent (0 = uniform).
        n_step, gamma: n-step returns (see below); ``gamma`` in [0, 1].
        next_fields: fields that hold the observation after the transition, returned n steps on
            (default: every field whose name starts with ``"next_"``). Only used when ``n_step > 1``.
        num_envs: the transitions of ``num_envs`` parallel environments are added interleaved, one row
            per environment per step (the successor of slot i is slot ``i + num_envs``). Every ``add``
            then holds a multiple of ``num_envs`` rows, and ``capacity`` must be a multiple of it.

    ``sample(batch_size, beta, generator=None) -> (batch, indices, weights)``:

    - stratified: the total priority is cut into ``batch_size`` equal segments and one item is drawn from
      each, from ``torch.rand(batch_size, generator=generator, dtype=torch.float64)`` (so a seeded
      generator reproduces the draw);
    - ``indices`` int64 (B,) are the slots, for ``update_priorities``;
    - ``weights`` float32 (B,): ``(N * P(i))^-beta / max_j (N * P(j))^-beta`` with the max over every
      stored item that can be drawn (``P(j) > 0``; found with the min-tree), N = ``len(self)``. This is
      the normalisation of Schaul et al. (weights in (0, 1], stable across batches), not the max over
      the sampled batch;
    - ``batch`` holds every stored field (shape ``(B, *shape)``, stored dtype), plus
      ``"discount"`` float32 (B,) = ``gamma * (1 - done)`` (the one-step discount, ``done`` folded in).
      With ``n_step > 1`` it also holds:

      * ``"n_reward"`` float32 (B,): ``sum_{k<m} gamma^k * reward_{t+k}``;
      * ``"n_discount"`` float32 (B,): ``gamma^m * (1 - done_{t+m-1})``, the factor on the bootstrap value;
      * ``"n_done"`` bool (B,): ``done_{t+m-1}`` (the episode ended within the m steps);
      * ``"n_steps"`` int64 (B,): m, the steps actually taken, 1 <= m <= n_step;
      * ``"n_<f>"`` for each f in ``next_fields`` (e.g. ``"n_next_state"``): field f of transition
        t+m-1, i.e. the observation m steps after the sampled one;

      where m stops at the first ``done`` (inclusive) and at the newest stored transition (a sample near
      the write head gets fewer steps; ``n_discount`` is then gamma^m on a live state). The n-step DQN
      target is ``n_reward + n_discount * max_a Q(n_next_state, a)``; with td_loss pass
      ``done=batch["n_done"], discount=gamma^m`` or simply ``done=zeros, discount=batch["n_discount"]``
      (``n_discount`` already holds ``1 - done``; passing both is harmless since done is 0 or 1).

    ``add(**columns)``: one tensor per field, leading batch dim n, exact stored dtype and shape (any
    device; copied to the CPU storage); new items get the largest priority seen so far (initially 1).
    ``add(td)`` takes the same columns as one TensorDict (or a mapping) whose top-level keys are the fields.
    ``sample(..., as_tensordict=True)`` returns one TensorDict of batch size (B,) instead of the tuple: the
    batch's columns plus ``"index"`` (the indices) and ``"_weight"`` (the importance weights), the keys
    TorchRL's prioritized sampler uses. Both need the optional tensordict package (``recengine[tensordict]``).
    ``update_priorities(indices, priorities, *, exponent_applied=False)``: priorities (finite, >= 0;
    float32/64) for slots that have been written; duplicates: the last wins. By default they are raw
    priorities p (e.g. ``|td| + eps``) and the replay stores ``p ** alpha``; with
    ``exponent_applied=True`` they are already ``p ** alpha`` (e.g. ``recengine.ops.td_loss``'s
    ``new_priorities`` computed with this replay's alpha) and are stored as given. Every call validates
    everything before changing anything and raises TypeError/ValueError/IndexError naming the argument.
    A zero priority is allowed: that item is never drawn until its priority rises.

    Thread safety: add, sample, update_priorities, save share one lock, so a sample never sees a
    half-written transition or a half-updated tree. Indices from a sample may be overwritten by a later
    add before their update; the update then sets the new item's priority (as in every ring-buffer PER).

    ``save(path)`` writes safetensors to a temporary file in the same directory, then renames it, so an
    interrupted save leaves the previous file intact; ``PrioritizedReplay.load(path)`` restores
    contents, priorities, position and settings.
    """

    def __init__(
        self,
        capacity: int,
        fields: dict,
        alpha: float = 0.6,
        n_step: int = 1,
        gamma: float = 0.99,
        *,
        next_fields=None,
        num_envs: int = 1,
    ):
        check_int("capacity", capacity, minimum=1)
        if not isinstance(fields, dict) or not fields:
            raise TypeError("fields: expected a non-empty dict {name: (shape, dtype)}")
        check_number("alpha", alpha, minimum=0.0)
        check_int("n_step", n_step, minimum=1)
        if check_number("gamma", gamma, minimum=0.0) > 1:
            raise ValueError(f"gamma: must be <= 1, got {gamma}")
        check_int("num_envs", num_envs, minimum=1)
        if capacity % num_envs:
            raise ValueError(f"capacity: must be a multiple of num_envs={num_envs}, got {capacity}")
        self.fields: dict[str, tuple[tuple[int, ...], torch.dtype]] = {}
        for name, spec in fields.items():
            if not isinstance(name, str):
                raise TypeError(f"fields: names must be str, got {name!r}")
            if name == "discount" or name.startswith("n_"):
                raise ValueError(f"fields: {name!r} is reserved for the sampled batch ('discount', 'n_*')")
            try:
                shape, dtype = spec
                shape = tuple(int(s) for s in shape)
            except (TypeError, ValueError):
                raise TypeError(f"fields[{name!r}]: expected (shape tuple, torch.dtype), got {spec!r}") from None
            if not isinstance(dtype, torch.dtype) or any(s < 0 for s in shape):
                raise TypeError(f"fields[{name!r}]: expected (shape tuple, torch.dtype), got {spec!r}")
            self.fields[name] = (shape, dtype)
        for name in ("reward", "done"):
            if name not in self.fields:
                raise ValueError(f"fields: a {name!r} field of shape () is required")
            if self.fields[name][0] != ():
                raise ValueError(f"fields[{name!r}]: must have shape (), got {self.fields[name][0]}")
        if n_step > 1 and (
            self.fields["reward"][1] not in (torch.float32, torch.float64)
            or self.fields["done"][1] not in (torch.bool, torch.uint8, torch.float32)
        ):
            raise TypeError("fields: n-step returns need a float32/float64 'reward' and a bool/uint8/float32 'done'")
        if next_fields is None:
            next_fields = [n for n in self.fields if n.startswith("next_")]
        next_fields = list(next_fields)
        for name in next_fields:
            if name not in self.fields:
                raise ValueError(f"next_fields: {name!r} is not a field")
        self.capacity, self.alpha, self.n_step, self.gamma = capacity, float(alpha), n_step, float(gamma)
        self.next_fields, self.num_envs = next_fields, num_envs

        self._storage = {name: _zeros((capacity, *shape), dtype) for name, (shape, dtype) in self.fields.items()}
        # gamma * (1 - done), computed once per add so a sample only gathers it with the other columns
        self._discount = torch.zeros(capacity, dtype=torch.float32)
        try:  # zero-copy views for the C++ gather: the stored fields, then the discount
            self._arrays = [as_array(t, name) for name, t in self._storage.items()]
        except TypeError as exc:
            raise TypeError(f"fields: every dtype must have a NumPy equivalent ({exc})") from None
        self._array_of = dict(zip(self._storage, self._arrays))
        self._arrays.append(as_array(self._discount, "discount"))
        self._batch_names = [*self._storage, "discount"]  # the sampled batch's keys, in self._arrays' order
        leaves = 1 << max(0, math.ceil(math.log2(capacity)))
        self._leaves = leaves
        self._sum_tree = _zeros(2 * leaves, torch.float64)
        self._min_tree = _zeros(2 * leaves, torch.float64).fill_(math.inf)
        self._sum_np = as_array(self._sum_tree, "sum_tree")
        self._min_np = as_array(self._min_tree, "min_tree")
        self._position = 0
        self._size = 0
        self._max_leaf = 1.0
        self._lock = threading.RLock()

    # ------------------------------------------------------------------------------- state
    def __len__(self) -> int:
        return self._size

    @property
    def position(self) -> int:
        """The slot the next added transition goes to."""
        return self._position

    @property
    def max_leaf_priority(self) -> float:
        """The leaf value (p^alpha) new items get: the largest ever stored (initially 1)."""
        return self._max_leaf

    def leaf_priorities(self) -> torch.Tensor:
        """A copy of the stored p_i^alpha of slots [0, len(self)), float64."""
        with self._lock:
            return self._sum_tree[self._leaves : self._leaves + self._size].clone()

    def total_priority(self) -> float:
        """sum_i p_i^alpha, the sum-tree's root."""
        return float(self._sum_tree[1])

    # --------------------------------------------------------------------------------- add
    def add(self, data: object = None, /, **columns) -> None:
        """Append n transitions (one tensor per field, leading dim n); they get the current max priority.

        The fields come as keyword arguments or as one TensorDict (or mapping) `data` keyed by field name.
        """
        if data is not None:
            if columns:
                raise ValueError("add: give the columns as one TensorDict or as keyword arguments, not both")
            columns = _columns_of(data)
        missing = [n for n in self.fields if n not in columns]
        unknown = [n for n in columns if n not in self.fields]
        if missing or unknown:
            raise ValueError(f"add: missing field(s) {missing}, unknown field(s) {unknown}")
        n = None
        for name, value in columns.items():
            shape, dtype = self.fields[name]
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"{name}: expected a torch.Tensor, got {type(value).__name__}")
            if value.dtype != dtype:
                raise TypeError(f"{name}: expected dtype {_dtype_name(dtype)}, got {_dtype_name(value.dtype)}")
            if value.dim() != 1 + len(shape) or tuple(value.shape[1:]) != shape:
                raise ValueError(f"{name}: expected shape (n, {', '.join(map(str, shape))}), got {tuple(value.shape)}")
            if n is None:
                n = value.shape[0]
            elif value.shape[0] != n:
                raise ValueError(f"{name}: {value.shape[0]} rows, but other fields have {n}")
        if n % self.num_envs:
            raise ValueError(f"add: the number of rows ({n}) must be a multiple of num_envs={self.num_envs}")
        if n == 0:
            return
        skip = max(0, n - self.capacity)  # only the newest `capacity` rows survive anyway
        # (detached: the storage never joins an autograd graph)
        targets = [(self._storage[name], value.detach()) for name, value in columns.items()]
        targets.append((self._discount, self.gamma * (1.0 - columns["done"].detach().float())))
        with self._lock:
            start = (self._position + skip) % self.capacity
            count = n - skip
            first = min(count, self.capacity - start)
            for col, value in targets:
                col[start : start + first].copy_(value[skip : skip + first])
                if count > first:
                    col[: count - first].copy_(value[skip + first :])
            cpu_ops().replay_tree_fill(self._sum_np, self._min_np, self.capacity, start, count, self._max_leaf)
            self._position = (self._position + n) % self.capacity
            self._size = min(self._size + n, self.capacity)

    # ------------------------------------------------------------------------------ sample
    def sample(
        self, batch_size: int, beta: float, generator: torch.Generator | None = None, *, as_tensordict: bool = False
    ):
        """Draw `batch_size` transitions; returns (batch dict, indices int64, weights float32), or with
        `as_tensordict` one TensorDict holding the batch, "index" and "_weight". See the class doc."""
        if as_tensordict:
            td = _tensordict()
            clash = [n for n in ("index", "_weight") if n in self.fields]
            if clash:
                raise ValueError(f"as_tensordict: field(s) {clash} would clash with the sample's index/weight keys")
            batch, indices, weights = self.sample(batch_size, beta, generator)
            return td.TensorDict({**batch, "index": indices, "_weight": weights}, batch_size=[batch_size])
        check_int("batch_size", batch_size, minimum=1)
        check_number("beta", beta, minimum=0.0)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator: expected a torch.Generator, got {type(generator).__name__}")
        if generator is not None and generator.device.type != "cpu":
            raise ValueError(
                f"generator: expected a CPU generator (the replay lives in CPU memory), got {generator.device}"
            )
        uniforms = torch.rand(batch_size, generator=generator, dtype=torch.float64).numpy()
        with self._lock:
            if self._size == 0:
                raise ValueError("sample: the replay is empty")
            if not self._sum_np[1] > 0:
                raise ValueError("sample: every stored priority is 0")
            # one C++ call: descent, importance weights and the gather of every column into new arrays
            indices, weights, rows = cpu_ops().replay_sample_rows(
                self._sum_np, self._min_np, uniforms, float(beta), self._arrays
            )
            indices = torch.from_numpy(indices)
            batch = {name: torch.from_numpy(r) for name, r in zip(self._batch_names, rows)}
            if self.n_step > 1:
                batch.update(self._n_step(indices))
        return batch, indices, torch.from_numpy(weights)

    def _n_step(self, indices: torch.Tensor) -> dict:
        """n-step returns for the sampled slots, one C++ call for all samples (called under the lock)."""
        batch = indices.shape[0]
        out = {
            "n_reward": torch.empty(batch, dtype=torch.float32),
            "n_discount": torch.empty(batch, dtype=torch.float32),
            "n_done": torch.empty(batch, dtype=torch.bool),
            "n_steps": torch.empty(batch, dtype=torch.int64),
        }
        last = torch.empty(batch, dtype=torch.int64)
        cpu_ops().replay_n_step_returns(
            self._array_of["reward"],
            self._array_of["done"],
            self._position,
            self.num_envs,
            self.n_step,
            self.gamma,
            indices.numpy(),
            out["n_reward"].numpy(),
            out["n_discount"].numpy(),
            out["n_done"].numpy(),
            out["n_steps"].numpy(),
            last.numpy(),
        )
        if self.next_fields:
            rows = {
                "n_" + name: torch.empty((batch, *self.fields[name][0]), dtype=self.fields[name][1])
                for name in self.next_fields
            }
            cpu_ops().replay_gather_rows(
                [self._array_of[name] for name in self.next_fields], last.numpy(), [r.numpy() for r in rows.values()]
            )
            out.update(rows)
        return out

    # -------------------------------------------------------------------- update_priorities
    def update_priorities(
        self, indices: torch.Tensor, priorities: torch.Tensor, *, exponent_applied: bool = False
    ) -> None:
        """Set the priorities (finite, >= 0) of written slots; all checked before anything changes.

        Raw priorities p are stored as p**alpha; with exponent_applied=True they are stored as given.
        """
        if not isinstance(indices, torch.Tensor):
            raise TypeError(f"indices: expected a torch.Tensor, got {type(indices).__name__}")
        if not isinstance(priorities, torch.Tensor):
            raise TypeError(f"priorities: expected a torch.Tensor, got {type(priorities).__name__}")
        if indices.dtype not in (torch.int32, torch.int64):
            raise TypeError(f"indices: expected dtype int32 or int64, got {_dtype_name(indices.dtype)}")
        if priorities.dtype not in (torch.float32, torch.float64):
            raise TypeError(f"priorities: expected dtype float32 or float64, got {_dtype_name(priorities.dtype)}")
        if indices.dim() != 1 or priorities.shape != indices.shape:
            raise ValueError(
                f"indices/priorities: expected two 1-D tensors of one length, got "
                f"{tuple(indices.shape)} and {tuple(priorities.shape)}"
            )
        # (the common case, CPU int64 contiguous indices without grad, skips the conversions)
        idx = (
            indices
            if (
                indices.dtype == torch.int64
                and indices.device.type == "cpu"
                and indices.is_contiguous()
                and not indices.requires_grad
            )
            else indices.detach().to("cpu", torch.int64).contiguous()
        )
        prio = (
            priorities
            if (priorities.device.type == "cpu" and priorities.is_contiguous() and not priorities.requires_grad)
            else priorities.detach().cpu().contiguous()
        )
        peak = float(prio.max()) if prio.numel() else 0.0  # every leaf <= the largest ever, so the sum is bounded
        if (
            math.isfinite(peak)
            and peak > 0
            and not math.isfinite(self.capacity * max(self._max_leaf, peak if exponent_applied else peak**self.alpha))
        ):
            raise ValueError(
                f"priorities: the largest, {peak:g}, lets the sum of priorities overflow float64 "
                f"(capacity {self.capacity}); scale the priorities down"
            )
        with self._lock:
            top = cpu_ops().replay_tree_update(
                self._sum_np,
                self._min_np,
                self._size,
                idx.numpy(),
                prio.numpy(),
                1.0 if exponent_applied else self.alpha,
            )
            self._max_leaf = max(self._max_leaf, top)

    # ----------------------------------------------------------------------------- save/load
    def save(self, path: str) -> None:
        """Write contents, priorities, position and settings to `path` (safetensors), atomically."""
        from safetensors.torch import save_file

        path = os.fspath(path)
        with self._lock:
            size = self._size
            tensors = {f"field.{name}": col[:size] for name, col in self._storage.items()}
            tensors["leaf_priorities"] = self._sum_tree[self._leaves : self._leaves + size]
            meta = {
                "version": _FORMAT_VERSION,
                "capacity": self.capacity,
                "alpha": self.alpha,
                "n_step": self.n_step,
                "gamma": self.gamma,
                "next_fields": self.next_fields,
                "num_envs": self.num_envs,
                "fields": {name: [list(shape), _dtype_name(dtype)] for name, (shape, dtype) in self.fields.items()},
                "position": self._position,
                "size": size,
                "max_leaf": self._max_leaf,
            }
            with atomic_path(path) as tmp:
                save_file(tensors, tmp, metadata={"recengine.replay": json.dumps(meta)})

    @classmethod
    def load(cls, path: str) -> PrioritizedReplay:
        """Restore a replay written by `save`; the file is checked first (replay_file.ReplayFileError naming it)."""
        from recengine.buffers.replay_file import ReplayFileError, open_replay_file

        with open_replay_file(path) as (f, meta):
            fields = {name: (tuple(shape), _dtype_from_name(dt)) for name, (shape, dt) in meta["fields"].items()}
            try:  # the constructor's own checks (reward and done present, reserved names, n-step dtypes)
                replay = cls(
                    meta["capacity"],
                    fields,
                    alpha=meta["alpha"],
                    n_step=meta["n_step"],
                    gamma=meta["gamma"],
                    next_fields=meta["next_fields"],
                    num_envs=meta["num_envs"],
                )
            except (TypeError, ValueError) as exc:
                raise ReplayFileError(f"{path}: the metadata describes no replay this code builds ({exc})") from None
            size, position = int(meta["size"]), int(meta["position"])
            for name, (shape, dtype) in fields.items():
                col = f.get_tensor(f"field.{name}")
                if col.dtype != dtype or tuple(col.shape) != (size, *shape):  # checked from the header already
                    raise ReplayFileError(f"{path}: field {name!r} has {col.dtype} {tuple(col.shape)}")
                replay._storage[name][:size].copy_(col)
            replay._discount[:size] = replay.gamma * (1.0 - replay._storage["done"][:size].float())
            leaves = f.get_tensor("leaf_priorities")  # finite float64 in [0, max_leaf], checked on opening
        replay._sum_tree[replay._leaves : replay._leaves + size] = leaves
        replay._min_tree[replay._leaves : replay._leaves + size] = torch.where(
            leaves > 0, leaves, torch.full_like(leaves, math.inf)
        )
        cpu_ops().replay_tree_rebuild(replay._sum_np, replay._min_np)
        replay._size, replay._position = size, position
        replay._max_leaf = float(meta["max_leaf"])
        return replay
