"""The EmbeddingTables lookup for a step with no host sync: bad ids reported in a device flag, the fused
optimizer update with its step count on the device.

EmbeddingTables(ids, offsets) raises at once on a bad id, which on CUDA reads the kernel's report back
inside the step, and its Adam update reads the step count back; `sync_free_lookup` does neither: it folds
the report into `error` (3,) int64 (recengine.ops.sync_free.NO_ERROR in every slot while all is well) and
the caller reads that flag when it chooses, after the step (`raise_reported_error`). Bad ids are skipped by
the kernels, so the tables stay in bounds and a bad batch never writes outside the touched rows.
"""

from __future__ import annotations

import torch
from torch import Tensor

from recengine.nn import EmbeddingTables
from recengine.ops.embedding_bag import check_embedding_bag_inputs, check_embedding_bag_values
from recengine.ops.sync_free import NO_ERROR, embedding_bag_fused_update_static, embedding_bag_reported
from recengine.optim import Adam, RowwiseAdagrad

__all__ = ["sync_free_lookup", "new_error_flag", "raise_reported_error"]


def new_error_flag(device: torch.device | str) -> Tensor:
    """A fresh error report (3,) int64 holding no error."""
    return torch.full((3,), NO_ERROR, dtype=torch.int64, device=device)


def raise_reported_error(error: Tensor, tables: EmbeddingTables, ids: Tensor, offsets: Tensor) -> None:
    """Read `error` (one host sync) and, if a slot is set, raise the error the public op would have raised
    for this batch (IndexError naming the table and the id, ValueError for a broken layout)."""
    if int(error.min()) != NO_ERROR:
        # the host check of the same batch names the first culprit
        check_embedding_bag_values(
            tables.weights.shape[0], tables.table_offsets.cpu(), ids.cpu(), offsets.cpu(), tables.names
        )
        raise ValueError("ids/offsets: the lookup kernel reported a bad value")


class _SyncFreeLookup(torch.autograd.Function):
    """Forward: pooled lookup, report folded into `error`. Backward: the fused update (in place)."""

    @staticmethod
    def forward(ctx, anchor, tables, ids, offsets, error):
        out, report = embedding_bag_reported(tables.weights, tables.table_offsets, ids, offsets, pooling=tables.pooling)
        torch.minimum(error, report, out=error)
        ctx.tables = tables
        ctx.save_for_backward(ids, offsets)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        ids, offsets = ctx.saved_tensors
        _fused_update(ctx.tables, grad_output.contiguous(), ids, offsets)
        return None, None, None, None, None


@torch.no_grad()
def _fused_update(tables: EmbeddingTables, grad_output: Tensor, ids: Tensor, offsets: Tensor) -> None:
    opt = tables.optimizer
    empty = tables.weights.new_empty(0)
    eps, betas = 1.0, (0.0, 0.0)
    if isinstance(opt, RowwiseAdagrad):
        eps = opt.eps
    elif isinstance(opt, Adam):
        eps, betas = opt.eps, opt.betas
    step = getattr(tables, "step", None)
    if step is None:
        step = torch.ones((), dtype=torch.int64, device=tables.weights.device)
    else:
        step.add_(1)
    embedding_bag_fused_update_static(
        grad_output,
        tables.weights,
        tables.table_offsets,
        ids,
        offsets,
        None,
        pooling=tables.pooling,
        optimizer=opt.kind,
        lr=opt.lr,
        eps=eps,
        betas=betas,
        state1=getattr(tables, "momentum1", empty),
        state2=getattr(tables, "momentum2", empty),
        step=step,
    )


def sync_free_lookup(tables: EmbeddingTables, ids: Tensor, offsets: Tensor, error: Tensor) -> Tensor:
    """tables(ids, offsets) with no host sync: (B, T*D) pooled; a bad id or layout is folded into `error`.

    `tables`: one dim, a fused optimizer (recengine.optim), no per-sample weights. `ids`, `offsets`: the
    EmbeddingTables layout, contiguous, on the tables' device; their structure (dtypes, shapes) is checked
    here, their values only in the kernel. Under no_grad, the lookup alone (no update).
    """
    if hasattr(tables, "groups") or tables.optimizer is None:
        raise ValueError("tables: sync_free_lookup needs tables of one dim with a fused optimizer")
    check_embedding_bag_inputs(
        tables.weights, tables.table_offsets, ids, offsets, pooling=tables.pooling, check_values=False
    )
    if not torch.is_grad_enabled():
        out, report = embedding_bag_reported(tables.weights, tables.table_offsets, ids, offsets, pooling=tables.pooling)
        torch.minimum(error, report, out=error)
        return out
    return _SyncFreeLookup.apply(tables._anchor, tables, ids, offsets, error)
