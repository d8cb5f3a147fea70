"""Jagged batches of user histories for serving: parsing, validation and the model's context windows.

A batch is either a list of id lists (one per user, oldest first) or ``(values, offsets)`` as the pooled
lookup takes them (user b's history is ``values[offsets[b]:offsets[b+1]]``). Checking happens here, once,
with errors that name the argument; after it, the rest of serving works on tensors only.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain

import numpy as np
import torch
from torch import Tensor

from recengine.padding import PAD_ID

#: the largest batch one recommend call takes
MAX_BATCH = 4096


@dataclass(frozen=True)
class JaggedHistories:
    """Validated histories: ``values`` (total,) int64 item ids and ``offsets`` (B+1,) int64."""

    values: Tensor
    offsets: Tensor

    @property
    def batch_size(self) -> int:
        return self.offsets.numel() - 1

    @property
    def lengths(self) -> Tensor:
        return self.offsets[1:] - self.offsets[:-1]


def _check_batch(batch: int) -> None:
    if not 1 <= batch <= MAX_BATCH:
        raise ValueError(f"histories: a batch of {batch} users; expected 1..{MAX_BATCH}")


def _check_ids(values: np.ndarray, offsets: np.ndarray, num_items: int) -> None:
    """IndexError naming the row of the first id outside [0, num_items). NumPy, not torch: at serving sizes
    (one to a few thousand ids) its per-call cost is a few microseconds, torch's several times that."""
    if values.size and (values.min() < 0 or values.max() >= num_items):
        pos = int(np.flatnonzero((values < 0) | (values >= num_items))[0])
        row = int(np.searchsorted(offsets, pos, side="right")) - 1
        raise IndexError(
            f"histories[{row}]: item id {int(values[pos])} is not in the catalog of {num_items} "
            f"items (ids 0..{num_items - 1})"
        )


def _refuse_nested(histories) -> None:
    """TypeError naming the first history holding something other than a plain item id (a list, an array)."""
    for b, h in enumerate(histories):
        for x in h:
            if not np.isscalar(x):
                raise TypeError(
                    f"histories[{b}]: item ids must be ints, got a nested {type(x).__name__} (histories is a list "
                    "of id lists: two levels, not three)"
                )
    raise TypeError("histories: item ids must be ints")


def parse_histories(histories, num_items: int) -> JaggedHistories:
    """Validate `histories` (a list of id lists, or (values, offsets) tensors) against a catalog of
    `num_items`. Raises TypeError / ValueError / IndexError naming `histories` (and the row for a bad id)."""
    if isinstance(histories, tuple) and len(histories) == 2 and all(isinstance(t, Tensor) for t in histories):
        values, offsets = histories
        if values.dtype not in (torch.int32, torch.int64) or values.dim() != 1:
            raise TypeError(
                f"histories: values must be a 1-d int32/int64 tensor, got {values.dtype} {tuple(values.shape)}"
            )
        if offsets.dtype != torch.int64 or offsets.dim() != 1 or offsets.numel() < 1:
            raise TypeError("histories: offsets must be a non-empty 1-d int64 tensor")
        values, offsets = values.to(torch.int64).cpu().contiguous(), offsets.cpu().contiguous()
        if int(offsets[0]) != 0 or int(offsets[-1]) != values.numel() or bool((offsets[1:] < offsets[:-1]).any()):
            raise ValueError("histories: offsets must start at 0, never decrease and end at len(values)")
    elif isinstance(histories, (list, tuple)):
        for b, h in enumerate(histories):
            if not isinstance(h, (list, tuple)):
                raise TypeError(f"histories[{b}]: expected a list of item ids, got {type(h).__name__}")
        lengths = np.fromiter(map(len, histories), dtype=np.int64, count=len(histories))
        try:
            flat = np.array(list(chain.from_iterable(histories)))
        except (ValueError, TypeError):  # ragged lists inside a history
            flat = None
        if flat is None or flat.ndim != 1:
            _refuse_nested(histories)
        if flat.size and (flat.dtype.kind not in "iu" or flat.dtype == np.bool_):
            raise TypeError(f"histories: item ids must be ints, got values of type {flat.dtype}")
        offsets_np = np.zeros(lengths.size + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets_np[1:])
        values_np = flat.astype(np.int64, copy=False) if flat.size else np.zeros(0, dtype=np.int64)
        _check_batch(offsets_np.size - 1)
        _check_ids(values_np, offsets_np, num_items)
        return JaggedHistories(torch.from_numpy(values_np), torch.from_numpy(offsets_np))
    else:
        raise TypeError(
            f"histories: expected a list of id lists or (values, offsets) tensors, got {type(histories).__name__}"
        )
    _check_batch(offsets.numel() - 1)
    _check_ids(values.numpy(), offsets.numpy(), num_items)
    return JaggedHistories(values, offsets)


def context_windows(histories: JaggedHistories, max_len: int) -> tuple[Tensor, Tensor, Tensor]:
    """(window (B, L) int64, lengths (B,) int64, truncated (B,) bool): each row's most recent `max_len` items,
    left-aligned with PAD_ID after them; `truncated` marks the rows whose history was longer than that.
    Built with NumPy on the validated CPU arrays (cheaper than torch ops at these sizes)."""
    values, offsets = histories.values.numpy(), histories.offsets.numpy()
    full = offsets[1:] - offsets[:-1]
    lengths = np.minimum(full, max_len)
    width = max(1, int(lengths.max()))
    slots = np.arange(width)
    valid = slots < lengths[:, None]
    if values.size:
        index = np.minimum((offsets[:-1] + full - lengths)[:, None] + slots, values.size - 1)
        window = np.where(valid, values[index], PAD_ID)
    else:
        window = np.full((lengths.size, width), PAD_ID, dtype=np.int64)
    return torch.from_numpy(window), torch.from_numpy(lengths), torch.from_numpy(full > max_len)
