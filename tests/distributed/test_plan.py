"""ShardingPlan and the shard layout it derives."""

from __future__ import annotations

import pytest

from recengine.distributed.plan import RowWise, Shard, ShardingPlan, TableWise, as_plan
from recengine.nn.embedding_tables import TableSpec

SPECS = (TableSpec("item", 10, 4), TableSpec("genre", 2, 4), TableSpec("tag", 5, 4))


def test_row_wise_splits_rows_into_contiguous_near_equal_ranges():
    layout = ShardingPlan.row_wise(SPECS[:1], 3).layout(SPECS[:1])
    assert [(s.rank, s.row_start, s.row_end) for s in layout.shards] == [(0, 0, 3), (1, 3, 6), (2, 6, 10)]


def test_table_with_fewer_rows_than_ranks_leaves_some_ranks_without_a_shard():
    layout = ShardingPlan.row_wise(SPECS[1:2], 3).layout(SPECS[1:2])
    assert [s.rank for s in layout.shards] == [1, 2]
    assert sum(s.num_rows for s in layout.shards) == 2


def test_table_wise_deals_tables_round_robin_and_orders_shards_by_rank():
    layout = ShardingPlan.table_wise(SPECS, 2).layout(SPECS)
    assert layout.shards == (Shard("item", 0, 0, 0, 10), Shard("tag", 2, 0, 0, 5), Shard("genre", 1, 1, 0, 2))
    assert layout.rank_bounds() == [0, 2, 3]


def test_local_table_offsets_stack_a_ranks_shards():
    plan = ShardingPlan(2, {"item": RowWise(), "genre": TableWise(1), "tag": TableWise(1)})
    assert plan.layout(SPECS).local_table_offsets(1).tolist() == [0, 5, 7, 12]


def test_fingerprint_differs_between_plans():
    row_wise = ShardingPlan.row_wise(SPECS, 2).layout(SPECS).fingerprint()
    table_wise = ShardingPlan.table_wise(SPECS, 2).layout(SPECS).fingerprint()
    assert row_wise != table_wise
    assert row_wise == ShardingPlan.row_wise(SPECS, 2).layout(SPECS).fingerprint()


BAD_PLANS = [
    (lambda: ShardingPlan(0, {}), ValueError, "world_size"),
    (lambda: ShardingPlan(2, {"item": TableWise(2)}), ValueError, "outside a world of 2"),
    (lambda: ShardingPlan(2, {"item": "row_wise"}), TypeError, "placements"),
    (lambda: TableWise(-1), ValueError, "TableWise.rank"),
    (lambda: ShardingPlan(1, {"item": RowWise()}).layout(SPECS), ValueError, "without a placement"),
    (lambda: ShardingPlan.row_wise(SPECS + (TableSpec("x", 1, 4),), 1).layout(SPECS), ValueError, "unknown"),
    (lambda: as_plan(ShardingPlan.row_wise(SPECS, 2), SPECS, 3), ValueError, "made for a world of 2"),
]


@pytest.mark.parametrize("build,error,message", BAD_PLANS)
def test_bad_plan_raises_a_clear_error(build, error, message):
    with pytest.raises(error, match=message):
        build()
