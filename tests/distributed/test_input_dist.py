"""Input and output distribution as pure steps: W ranks simulated in one process (the payloads handed over by
hand instead of an all-to-all) must pool exactly what the single-table reference pools."""

from __future__ import annotations

import pytest
import torch

from recengine.distributed.input_dist import TableRouter, assemble_owner_batch, bucket_requests
from recengine.distributed.output_dist import bag_scale, combine_pooled, owner_chunks
from recengine.distributed.plan import RowWise, ShardingPlan, TableWise
from recengine.nn.embedding_tables import TableSpec
from recengine.reference.embedding_bag import embedding_bag_reference
from tests.helpers import assert_close

SPECS = (TableSpec("item", 13, 3), TableSpec("genre", 4, 3))
PLANS = {
    "row_wise": lambda w: ShardingPlan.row_wise(SPECS, w),
    "table_wise": lambda w: ShardingPlan.table_wise(SPECS, w),
    "mixed": lambda w: ShardingPlan(w, {"item": RowWise(), "genre": TableWise(w - 1)}),
}


def _batch(seed: int, batch: int):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(0, 4, (len(SPECS) * batch,), generator=g)
    offsets = torch.cat([torch.zeros(1, dtype=torch.int64), lengths.cumsum(0)])
    ids = torch.cat(
        [
            torch.randint(0, s.num_rows, (int(lengths[t * batch : (t + 1) * batch].sum()),), generator=g)
            for t, s in enumerate(SPECS)
        ]
    )
    return ids, offsets, torch.rand(ids.shape[0], generator=g)


def _simulate(world: int, plan: ShardingPlan, weights: torch.Tensor, batches, pooling: str) -> list[torch.Tensor]:
    """Every requester's pooled output, the all-to-alls done by hand."""
    layout = plan.layout(SPECS)
    router = TableRouter(layout)
    starts = [0, SPECS[0].num_rows, SPECS[0].num_rows + SPECS[1].num_rows]
    sizes = [(o.shape[0] - 1) // len(SPECS) for _, o, _ in batches]
    requests = [bucket_requests(router, ids, offsets, psw, b) for (ids, offsets, psw), b in zip(batches, sizes)]
    to_requesters = []
    for q in range(world):
        shards = layout.shards_of(q)
        payloads = [r.payload(q) for r in requests]
        owner = assemble_owner_batch(
            len(shards), sizes, [p[0] for p in payloads], [p[1] for p in payloads], [p[2] for p in payloads]
        )
        if shards:
            local = torch.cat(
                [weights[starts[s.table_index] + s.row_start : starts[s.table_index] + s.row_end] for s in shards]
            )
            pooled = embedding_bag_reference(
                local, layout.local_table_offsets(q), owner.ids, owner.offsets, owner.per_sample_weights, "sum"
            )
        else:
            pooled = weights.new_zeros(sum(sizes), 0)
        to_requesters.append(owner_chunks(pooled, sizes))
    outputs = []
    for r, (_, offsets, _) in enumerate(batches):
        received = [to_requesters[q][r] for q in range(world)]
        scale = bag_scale(offsets, len(SPECS), sizes[r], pooling)
        outputs.append(
            combine_pooled(received, layout.shard_tables(), layout.rank_bounds(), sizes[r], len(SPECS), 3, scale)
        )
    return outputs


@pytest.mark.parametrize("pooling", ["sum", "mean"])
@pytest.mark.parametrize("plan", sorted(PLANS))
@pytest.mark.parametrize("world", [1, 2, 3])
def test_distributed_pooling_equals_the_reference(world, plan, pooling):
    weights = torch.randn(sum(s.num_rows for s in SPECS), 3, generator=torch.Generator().manual_seed(0))
    table_offsets = torch.tensor([0, 13, 17])
    batches = [_batch(seed, batch=2 + seed) for seed in range(world)]  # uneven batch sizes
    outputs = _simulate(world, PLANS[plan](world), weights, batches, pooling)
    for (ids, offsets, psw), out in zip(batches, outputs):
        assert_close(out, embedding_bag_reference(weights, table_offsets, ids, offsets, psw, pooling))


def test_bucketing_groups_ids_by_owner_then_shard_then_sample():
    layout = ShardingPlan.row_wise(SPECS[:1], 2).layout(SPECS[:1])  # rows 0-5 on rank 0, 6-12 on rank 1
    ids, offsets = torch.tensor([7, 1, 12, 2, 6]), torch.tensor([0, 3, 5])
    requests = bucket_requests(TableRouter(layout), ids, offsets, None, 2)
    assert requests.ids.tolist() == [1, 2, 1, 6, 0]  # rank 0: 1 (sample 0), 2 (sample 1); rank 1: 7, 12, 6 local
    assert requests.lengths.tolist() == [[1, 1], [2, 1]]
    assert requests.ids_per_rank == [2, 3]
    assert ids[requests.order].tolist() == [1, 2, 7, 12, 6]


def test_mean_scale_leaves_empty_bags_at_zero_and_divides_by_the_full_bag_length():
    offsets = torch.tensor([0, 0, 4])  # one table, bags of 0 and 4 ids
    assert bag_scale(offsets, 1, 2, "mean").flatten().tolist() == [1.0, 0.25]
    assert bag_scale(offsets, 1, 2, "sum") is None
