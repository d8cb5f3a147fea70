"""Output distribution: pooled shard rows back to the requesters, and in the backward the gradients of the
pooled outputs out to the owners. Pure functions over tensors; `ShardedEmbeddingTables` moves them.

Every owner pools with "sum". A requester adds the partial sums of a row-wise table's shards (each shard
saw only the ids in its rows) and, for mean pooling, divides by the full bag length it alone knows;
in the backward it applies the same 1/length before sending, so the owners' fused update always works
on a sum pooling.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["owner_chunks", "combine_pooled", "bag_scale", "grad_chunks", "owner_grad"]


def owner_chunks(pooled: Tensor, batch_sizes: list[int]) -> list[Tensor]:
    """Split an owner's (Btot, S_q*D) pooled rows into the flat block of each requester (rows in order)."""
    return [chunk.reshape(-1) for chunk in pooled.split(batch_sizes)]


def bag_scale(offsets: Tensor, num_tables: int, batch: int, pooling: str) -> Tensor | None:
    """(B, T, 1) float32 factor of each pooled bag: 1/length for mean pooling (empty bags: 1), None for sum."""
    if pooling == "sum":
        return None
    lengths = (offsets[1:] - offsets[:-1]).view(num_tables, batch).t()
    return (1.0 / lengths.clamp(min=1).to(torch.float32)).unsqueeze(-1)


def combine_pooled(
    received: list[Tensor],
    shard_tables: Tensor,
    rank_bounds: list[int],
    batch: int,
    num_tables: int,
    dim: int,
    scale: Tensor | None,
) -> Tensor:
    """(B, T*D) from what each owner q sent, (B, S_q, D) flat: shards of one table summed, then scaled."""
    parts = [r.view(batch, rank_bounds[q + 1] - rank_bounds[q], dim) for q, r in enumerate(received)]
    per_shard = torch.cat(parts, dim=1)
    pooled = per_shard.new_zeros(batch, num_tables, dim).index_add_(1, shard_tables, per_shard)
    if scale is not None:
        pooled *= scale
    return pooled.view(batch, num_tables * dim)


def grad_chunks(
    grad_output: Tensor, shard_tables: Tensor, rank_bounds: list[int], num_tables: int, dim: int, scale: Tensor | None
) -> list[Tensor]:
    """The gradient each owner q needs, (B, S_q, D) flat: its shards' columns of grad_output, scaled."""
    batch = grad_output.shape[0]
    grad = grad_output.reshape(batch, num_tables, dim)
    if scale is not None:
        grad = grad * scale
    per_shard = grad.index_select(1, shard_tables)
    return [per_shard[:, g0:g1].reshape(-1) for g0, g1 in zip(rank_bounds, rank_bounds[1:])]


def owner_grad(received: list[Tensor], batch_sizes: list[int], num_shards: int, dim: int) -> Tensor:
    """(Btot, S_q*D): the requesters' gradient blocks stacked in requester order (the owner batch's rows)."""
    parts = [r.view(b_r, num_shards * dim) for b_r, r in zip(batch_sizes, received)]
    return torch.cat(parts, dim=0)
