"""Ops for a training step that never waits for the device: the same kernels as the public ops, with the
value checks left to the caller (done once, where a batch enters the step) and errors reported in tensors.

The public ops check the values they are given on every call (ids inside their tables, finite inputs,
overflowed logits) and raise at once, which on a GPU means reading a result back to the host inside the
step: a sync that stalls the launch queue and breaks CUDA-graph capture. The ops here read nothing back:

  embedding_bag_reported            the pooled lookup and the kernel's error report (3,) int64, int64 max
                                    where nothing is wrong (see recengine.kernels.embedding_bag); the caller
                                    folds it into a flag and reads the flag after the step
  embedding_bag_fused_update_static the fused backward + optimizer update with the Adam step count a device
                                    tensor and a launch grid fixed by the batch's shape
  catalog_argmax                    the best item per row (catalog_topk with k = 1, no exclusions), ids (B,)

On the CPU the kernels are host code, so nothing can stall: these ops reuse the C++ kernels (which check
the ids themselves). The shapes, dtypes and devices are the caller's to check (recengine.train.dqn_step and
recengine.train.embedding_step check them when a batch enters).
"""

from __future__ import annotations

import torch
from torch import Tensor

from recengine.ops._triton import triton_kernels
from recengine.ops.embedding_bag import OPTIMIZERS
from recengine.ops.policy import cpu_topk

__all__ = ["embedding_bag_reported", "embedding_bag_fused_update_static", "catalog_argmax", "NO_ERROR"]

#: an error-report slot that holds no error (the largest int64)
NO_ERROR = torch.iinfo(torch.int64).max


@torch.library.custom_op("recengine::embedding_bag_reported", mutates_args=(), device_types="cpu")
def _reported_op(
    weights: Tensor,
    table_offsets: Tensor,
    ids: Tensor,
    offsets: Tensor,
    per_sample_weights: Tensor | None,
    pooling: str,
) -> tuple[Tensor, Tensor]:
    out = torch.ops.recengine.embedding_bag(weights, table_offsets, ids, offsets, per_sample_weights, pooling)
    return out, torch.full((3,), NO_ERROR, dtype=torch.int64)


@_reported_op.register_kernel("cuda")
def _reported_cuda(weights, table_offsets, ids, offsets, per_sample_weights, pooling):
    kernels = triton_kernels("embedding_bag")
    return kernels.embedding_bag(weights, table_offsets, ids, offsets, per_sample_weights, pooling == "mean")


@_reported_op.register_fake
def _reported_fake(weights, table_offsets, ids, offsets, per_sample_weights, pooling):
    num_tables = table_offsets.shape[0] - 1
    batch = (offsets.shape[0] - 1) // num_tables
    return weights.new_empty(batch, num_tables * weights.shape[1]), ids.new_empty(3, dtype=torch.int64)


@torch.library.custom_op(
    "recengine::embedding_bag_fused_update_static", mutates_args=("weights", "state1", "state2"), device_types="cpu"
)
def _update_static_op(
    grad_output: Tensor,
    weights: Tensor,
    table_offsets: Tensor,
    ids: Tensor,
    offsets: Tensor,
    per_sample_weights: Tensor | None,
    pooling: str,
    optimizer: str,
    state1: Tensor,
    state2: Tensor,
    lr: float,
    eps: float,
    beta1: float,
    beta2: float,
    step: Tensor,
) -> None:
    torch.ops.recengine.embedding_bag_fused_update(
        grad_output,
        weights,
        table_offsets,
        ids,
        offsets,
        per_sample_weights,
        pooling,
        optimizer,
        state1,
        state2,
        lr,
        eps,
        beta1,
        beta2,
        step,
    )


@_update_static_op.register_kernel("cuda")
def _update_static_cuda(
    grad_output,
    weights,
    table_offsets,
    ids,
    offsets,
    per_sample_weights,
    pooling,
    optimizer,
    state1,
    state2,
    lr,
    eps,
    beta1,
    beta2,
    step,
):
    kernels = triton_kernels("embedding_bag")
    count = step.to(torch.float64)
    corrections = torch.stack([1.0 - beta1**count, 1.0 - beta2**count]).to(torch.float32)
    kernels.embedding_bag_fused_update_static(
        grad_output.contiguous(),
        weights,
        table_offsets,
        ids,
        offsets,
        per_sample_weights,
        pooling == "mean",
        OPTIMIZERS[optimizer],
        state1,
        state2,
        lr,
        eps,
        beta1,
        beta2,
        corrections,
    )


@_update_static_op.register_fake
def _update_static_fake(
    grad_output,
    weights,
    table_offsets,
    ids,
    offsets,
    per_sample_weights,
    pooling,
    optimizer,
    state1,
    state2,
    lr,
    eps,
    beta1,
    beta2,
    step,
):
    return None


@torch.library.custom_op("recengine::catalog_argmax", mutates_args=(), device_types="cpu")
def _argmax_op(Q: Tensor, E: Tensor, bias: Tensor | None) -> Tensor:
    return cpu_topk(Q, E, 1, bias, 1.0, None, None)[1][:, 0].contiguous()


@_argmax_op.register_kernel("cuda")
def _argmax_cuda(Q, E, bias):
    kernels = triton_kernels("policy")
    return kernels.catalog_topk(Q, E, 1, bias, 1.0, None, None)[1][:, 0].contiguous()


@_argmax_op.register_fake
def _argmax_fake(Q, E, bias):
    return Q.new_empty(Q.shape[0], dtype=torch.int64)


# ------------------------------------------------------------------------------ public functions
def embedding_bag_reported(
    weights: Tensor,
    table_offsets: Tensor,
    ids: Tensor,
    offsets: Tensor,
    per_sample_weights: Tensor | None = None,
    *,
    pooling: str = "sum",
) -> tuple[Tensor, Tensor]:
    """(pooled (B, T*D), error report (3,) int64): recengine.ops.embedding_bag without the readback of the
    report. Slots: the first bad id's position, the first bag and the first table that break the layout,
    NO_ERROR where none. Inputs contiguous, of the dtypes recengine.ops.embedding_bag takes."""
    return torch.ops.recengine.embedding_bag_reported(weights, table_offsets, ids, offsets, per_sample_weights, pooling)


def embedding_bag_fused_update_static(
    grad_output: Tensor,
    weights: Tensor,
    table_offsets: Tensor,
    ids: Tensor,
    offsets: Tensor,
    per_sample_weights: Tensor | None,
    *,
    pooling: str,
    optimizer: str,
    lr: float,
    eps: float,
    betas: tuple[float, float],
    state1: Tensor,
    state2: Tensor,
    step: Tensor,
) -> None:
    """recengine.ops.embedding_bag_fused_update in place, with `step` (a 0-d int64 tensor on the device,
    already counting this step) read on the device and no value checks: ids out of their table are skipped."""
    torch.ops.recengine.embedding_bag_fused_update_static(
        grad_output,
        weights,
        table_offsets,
        ids,
        offsets,
        per_sample_weights,
        pooling,
        optimizer,
        state1,
        state2,
        float(lr),
        float(eps),
        float(betas[0]),
        float(betas[1]),
        step,
    )


def catalog_argmax(Q: Tensor, E: Tensor, bias: Tensor | None = None) -> Tensor:
    """argmax over the catalog of Q @ E.T + bias per row, (B,) int64, ties to the lower id, never the B x N
    logits: recengine.ops.catalog_topk(Q, E, 1)'s ids, without its finiteness checks."""
    return torch.ops.recengine.catalog_argmax(Q.contiguous(), E.contiguous(), bias)
