"""Rows of a trainable table, with a backward that gives the same bits on every run.

    x = gather_rows(table, ids)        # table[ids]: (*ids.shape, D) for a (N, D) table, ids.shape for a (N,) one

`table[ids]` (advanced indexing) is what this computes, but on the CPU its backward scatters the rows' gradients
into the table's with atomic float adds spread over the threads whenever there are many of them: which thread
adds first changes from run to run, so the gradient's rounding does, and a training run at a fixed seed and
thread count stops being reproducible (two threads were enough to change a fine-tuned agent's figures). The
embedding backward that this goes through gives each table row to one thread and adds its terms in index
order: the same sums, in an order that does not depend on timing.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["gather_rows"]


def gather_rows(table: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """`table[ids]` for a (N, D) or (N,) `table` and integer `ids` of any shape, differentiable in `table` with a
    deterministic backward on the CPU. Out-of-range ids raise (IndexError), as indexing does."""
    if table.dim() == 1:
        return nn.functional.embedding(ids, table.unsqueeze(1)).squeeze(-1)
    if table.dim() != 2:
        raise ValueError(f"table: expected a 1-D or 2-D tensor, got shape {tuple(table.shape)}")
    return nn.functional.embedding(ids, table)
