"""Input distribution: a requester's jagged batch split by owning shard, and an owner's batch assembled from
what every requester sent. Both halves are pure functions (no process group), so they are tested alone;
`ShardedEmbeddingTables` moves their payloads with one all-to-all.

Requester side (`bucket_requests`): every id of the caller's table-major batch (see
recengine.ops.embedding_bag) is mapped to its global shard g and made local to it (id - shard's first
row), then the ids are stably sorted by (g, bag): the ids for rank q are one contiguous run (shards are
ordered by rank), grouped by shard, then by the requester's sample b. `lengths[g, b]` counts them.

Owner side (`assemble_owner_batch`): rank q receives, from each requester r, its S_q x B_r bag lengths
and the ids, and builds one table-major batch over its S_q local shards and Btot = sum_r B_r samples,
samples ordered by requester (r = 0 first): the bag of requester r's sample b in local shard s is
s*Btot + (B_0 + ... + B_{r-1}) + b. Pooling that batch gives (Btot, S_q*D), whose rows for requester r
are one contiguous block, which is what output distribution sends back.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from recengine.distributed.plan import ShardLayout
from recengine.ops.jagged_layout import bag_of_each_id

__all__ = ["Requests", "OwnerBatch", "bucket_requests", "assemble_owner_batch"]


@dataclass
class Requests:
    """A requester's ids grouped by owning shard (see the module docstring)."""

    #: (G, B) int64: number of ids of sample b that fall in global shard g
    lengths: Tensor
    #: (N,) int64: shard-local ids, sorted by (shard, sample), caller's order kept within a bag
    ids: Tensor
    #: (N,) float32 or None: the per-sample weights in the same order
    per_sample_weights: Tensor | None
    #: (N,) int64: the caller's position of each sorted id
    order: Tensor
    #: (W,) list: number of ids sent to each rank
    ids_per_rank: list[int]
    #: (W+1,) list: rank q owns global shards [rank_bounds[q], rank_bounds[q+1])
    rank_bounds: list[int]

    def payload(self, rank: int) -> tuple[Tensor, Tensor, Tensor | None]:
        """What goes to `rank`: its shards' bag lengths (S_q*B,), the ids and the per-sample weights."""
        g0, g1 = self.rank_bounds[rank], self.rank_bounds[rank + 1]
        start = sum(self.ids_per_rank[:rank])
        end = start + self.ids_per_rank[rank]
        psw = None if self.per_sample_weights is None else self.per_sample_weights[start:end]
        return self.lengths[g0:g1].reshape(-1), self.ids[start:end], psw


@dataclass
class OwnerBatch:
    """An owner's table-major batch over its local shards (see the module docstring)."""

    ids: Tensor
    offsets: Tensor
    per_sample_weights: Tensor | None
    #: (N_q,) int64: the position in the received ids (requesters concatenated) of each batch id
    order: Tensor
    #: number of samples each requester sent (B_r), and number of ids received from each
    batch_sizes: list[int]
    ids_received: list[int]


class TableRouter:
    """Maps (table, id) to (global shard, shard-local id), with one searchsorted per table."""

    def __init__(self, layout: ShardLayout):
        self.num_tables = len(layout.specs)
        self.num_shards = len(layout.shards)
        self.rank_bounds = layout.rank_bounds()
        self._bounds = [layout.table_row_bounds(t) for t in range(self.num_tables)]

    def route(self, table: int, ids: Tensor) -> tuple[Tensor, Tensor]:
        """(global shard, local id) of each id (int64, already known to be inside the table)."""
        starts, index = self._bounds[table]
        if starts.numel() == 1:
            return index.expand(ids.shape[0]), ids
        k = torch.searchsorted(starts, ids, right=True) - 1
        return index[k], ids - starts[k]


def bucket_requests(
    router: TableRouter, ids: Tensor, offsets: Tensor, per_sample_weights: Tensor | None, batch: int
) -> Requests:
    """Group a validated table-major batch (ids local to their table) by owning shard."""
    n = ids.shape[0]
    ids = ids.long()
    bag = bag_of_each_id(offsets, n)
    shard = torch.empty(n, dtype=torch.int64)
    local = torch.empty(n, dtype=torch.int64)
    segments = offsets[::batch].tolist() if batch > 0 else [0] * (router.num_tables + 1)
    for t in range(router.num_tables):
        lo, hi = segments[t], segments[t + 1]
        if hi > lo:
            shard[lo:hi], local[lo:hi] = router.route(t, ids[lo:hi])
    key = shard * batch + bag % max(batch, 1)
    order = torch.sort(key, stable=True).indices
    lengths = torch.bincount(key, minlength=router.num_shards * batch).view(router.num_shards, batch)
    per_shard = lengths.sum(1)
    ids_per_rank = [int(per_shard[g0:g1].sum()) for g0, g1 in zip(router.rank_bounds, router.rank_bounds[1:])]
    psw = None if per_sample_weights is None else per_sample_weights[order]
    return Requests(lengths, local[order], psw, order, ids_per_rank, router.rank_bounds)


def assemble_owner_batch(
    num_shards: int,
    batch_sizes: list[int],
    lengths: list[Tensor],
    ids: list[Tensor],
    per_sample_weights: list[Tensor] | None,
) -> OwnerBatch:
    """One table-major batch over `num_shards` local shards from each requester's (lengths, ids, psw).

    No sort: requester r's ids of bag (s, b) are contiguous and in order, so each id's place in the batch is
    the start of its bag s*Btot + prefix_r + b plus its rank inside the bag."""
    total = sum(batch_sizes)
    per_shard = [lengths_r.view(num_shards, b_r) for b_r, lengths_r in zip(batch_sizes, lengths)]
    bag_lengths = torch.cat(per_shard, dim=1).reshape(-1) if per_shard else torch.empty(0, dtype=torch.int64)
    offsets = torch.cat([bag_lengths.new_zeros(1), bag_lengths.cumsum(0)])
    counts = [t.numel() for t in ids]
    order = torch.empty(sum(counts), dtype=torch.int64)
    prefix, base = 0, 0
    for b_r, lengths_r, n_r in zip(batch_sizes, lengths, counts):
        if n_r:
            starts_r = torch.cat([lengths_r.new_zeros(1), lengths_r.cumsum(0)])
            bag = bag_of_each_id(starts_r, n_r)  # s*B_r + b
            batch_bag = (bag // b_r) * total + prefix + bag % b_r
            target = offsets[batch_bag] + torch.arange(n_r) - starts_r[bag]
            order[target] = torch.arange(base, base + n_r)
        prefix += b_r
        base += n_r
    all_ids = torch.cat(ids) if ids else torch.empty(0, dtype=torch.int64)
    psw = None if per_sample_weights is None else torch.cat(per_sample_weights)[order]
    return OwnerBatch(all_ids[order], offsets, psw, order, list(batch_sizes), counts)
