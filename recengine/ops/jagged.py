"""recengine.ops.jagged: pick some tables out of a table-major jagged batch, as one op.

The table-batched layout (see recengine.ops.embedding_bag) holds T tables' bags table-major: the bag of
sample b in table t is ids[offsets[t*B + b] : offsets[t*B + b + 1]]. Selecting (and reordering) tables
gives a batch whose number of ids depends on the data, which torch.compile and torch.export can only
trace through an op that declares an output of dynamic size; `jagged_select_tables` is that op. It
returns a gather index rather than the ids, so that the caller gathers the ids and, differentiably, the
per-sample weights with it.

Registered op (namespace "recengine"; plain torch code serves every device; a fake gives the dynamic size):
  jagged_select_tables(offsets, tables, num_tables) -> (index, offsets of the selection)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from recengine.ops._checks import check_int, check_tensor

__all__ = ["select_tables"]


@torch.library.custom_op("recengine::jagged_select_tables", mutates_args=())
def _select_tables_op(offsets: Tensor, tables: list[int], num_tables: int) -> tuple[Tensor, Tensor]:
    """(index, new_offsets): positions into ids of the selected tables' bags, in the order of `tables`,
    and the (len(tables)*B + 1,) offsets of those bags."""
    batch = (offsets.shape[0] - 1) // num_tables
    sel = torch.tensor(tables, dtype=torch.int64, device=offsets.device)
    starts = offsets[sel * batch]
    counts = offsets[(sel + 1) * batch] - starts
    total = int(counts.sum())
    shift = starts - (torch.cumsum(counts, 0) - counts)  # first position of each table minus where it lands
    index = torch.arange(total, dtype=torch.int64, device=offsets.device)
    index += torch.repeat_interleave(shift, counts, output_size=total)
    lengths = (offsets[1:] - offsets[:-1]).view(num_tables, batch)[sel].reshape(-1)
    new_offsets = torch.zeros(lengths.shape[0] + 1, dtype=torch.int64, device=offsets.device)
    torch.cumsum(lengths, 0, out=new_offsets[1:])
    return index, new_offsets


@_select_tables_op.register_fake
def _select_tables_fake(offsets, tables, num_tables):
    batch = (offsets.shape[0] - 1) // num_tables
    total = torch.library.get_ctx().new_dynamic_size()
    return offsets.new_empty(total), offsets.new_empty(len(tables) * batch + 1)


def select_tables(
    ids: Tensor, offsets: Tensor, tables: Sequence[int], num_tables: int, per_sample_weights: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor | None]:
    """The bags of `tables` (indices into the T = `num_tables` tables, in the order given, repeats allowed)
    as a table-major batch of their own: (ids, offsets (len(tables)*B+1,) int64, per_sample_weights or None).

    Returns the inputs themselves when `tables` is 0..T-1 in order. The gather of the per-sample weights is
    differentiable. Offsets are assumed valid (the embedding op checks them); ids are not read.
    """
    check_int("num_tables", num_tables, minimum=1)
    check_tensor("ids", ids, ndim=1)
    check_tensor("offsets", offsets, dtypes=(torch.int64,), ndim=1)
    if offsets.shape[0] < 1 or (offsets.shape[0] - 1) % num_tables != 0:
        raise ValueError(f"offsets: expected length T*B+1 with T={num_tables} tables, got {offsets.shape[0]}")
    tables = [check_int("tables", t, minimum=0) for t in tables]
    if any(t >= num_tables for t in tables):
        raise ValueError(f"tables: indices must be < num_tables = {num_tables}, got {tables}")
    if tables == list(range(num_tables)):
        return ids, offsets, per_sample_weights
    index, new_offsets = torch.ops.recengine.jagged_select_tables(offsets.contiguous(), tables, num_tables)
    psw = None if per_sample_weights is None else per_sample_weights[index]
    return ids[index], new_offsets, psw
