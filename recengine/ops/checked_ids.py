"""recengine.ops.checked_ids: the range check of a matrix of row ids, as an op that survives torch.compile/export.

A module that indexes a table with ids it was given (the encoder's item histories, its user ids) must reject an id
outside the table. Read in Python (``bool(ids.max() >= n)``), that check is a data-dependent branch: torch.compile
breaks the graph on it and torch.export refuses it. Inside an op the check runs on every call, in eager mode, in a
compiled graph and in an exported program alike. The op returns the ids to look up (PAD_ID mapped to row 0, which
the caller masks out), so its result is used and no graph pass can drop it as dead code.

Registered op (namespace "recengine"; plain torch code serves every device; the fake gives the shape):
  checked_ids(ids, num_rows, name, allow_pad) -> ids with PAD_ID replaced by 0, int64
"""

from __future__ import annotations

import torch
from torch import Tensor

from recengine.ops._checks import INDEX_DTYPES, check_int, check_tensor
from recengine.padding import PAD_ID

__all__ = ["checked_ids"]


@torch.library.custom_op("recengine::checked_ids", mutates_args=())
def _checked_ids_op(ids: Tensor, num_rows: int, name: str, allow_pad: bool) -> Tensor:
    """IndexError naming `name` and the range of `ids` unless every id lies in [0, num_rows) (or is PAD_ID when
    `allow_pad`); returns the ids as int64 with PAD_ID replaced by 0."""
    ids = ids.to(torch.int64)
    low = PAD_ID if allow_pad else 0
    if ids.numel():
        lo, hi = torch.aminmax(ids)
        if int(lo) < low or int(hi) >= num_rows:
            allowed = f"[0, {num_rows})" + (f" or be PAD_ID={PAD_ID}" if allow_pad else "")
            raise IndexError(f"{name}: ids must lie in {allowed}, got range [{int(lo)}, {int(hi)}]")
    return ids.clamp(min=0)


@_checked_ids_op.register_fake
def _checked_ids_fake(ids: Tensor, num_rows: int, name: str, allow_pad: bool) -> Tensor:
    return torch.empty_like(ids, dtype=torch.int64)


def checked_ids(ids: Tensor, num_rows: int, *, name: str, allow_pad: bool = False) -> Tensor:
    """`ids` (any shape, int32/int64) as int64 row indices into a table of `num_rows` rows, PAD_ID slots mapped to
    row 0 when `allow_pad` (mask them out afterwards). IndexError naming `name` for an id outside the table, in
    every mode (eager, torch.compile, torch.export); TypeError for a non-integer tensor."""
    check_tensor(name, ids, dtypes=INDEX_DTYPES)
    check_int("num_rows", num_rows, minimum=1)
    return torch.ops.recengine.checked_ids(ids, num_rows, name, allow_pad)
