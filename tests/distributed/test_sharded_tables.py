"""ShardedEmbeddingTables against the single-process EmbeddingTables: in one process (a world of one) and on
2 and 3 real gloo ranks (the session's spawned worlds, see conftest.py)."""

from __future__ import annotations

import pytest
import torch

from recengine.bench.distributed import bytes_per_rank
from recengine.distributed import ShardedEmbeddingTables, ShardingPlan, TableWise
from recengine.nn.embedding_tables import EmbeddingTables, TableSpec
from tests.distributed import worlds
from tests.distributed.conftest import SCENARIOS
from tests.helpers import assert_close

WORLD_SIZES = (2, 3)


def _ok(result: tuple[str, object]) -> object:
    status, value = result
    assert status == "ok", f"the rank failed: {value}"
    return value


# ---------------------------------------------------------------------------------- a world of one
@pytest.mark.parametrize("pooling", ["sum", "mean"])
@pytest.mark.parametrize("optimizer", ["sgd", "rowwise_adagrad", "adam"])
def test_world_of_one_trains_like_embedding_tables(pooling, optimizer):
    scenario = worlds.Scenario(optimizer, "row_wise", pooling=pooling, weighted=True)
    expected, expected_grads = worlds.train_reference(scenario, 1)
    sharded = worlds.train_sharded(0, 1, scenario)
    for name, value in expected.items():
        assert_close(sharded["state"][name], value, name=name)
    for got, want in zip(sharded["psw_grads"], expected_grads):
        assert_close(got, want, rtol=1e-4, atol=1e-5, name="per_sample_weights.grad")


def test_forward_without_grad_returns_the_pooled_rows():
    specs = [TableSpec("a", 9, 3)]
    reference = EmbeddingTables(specs, pooling="mean", seed=4)
    sharded = ShardedEmbeddingTables(specs, pooling="mean")
    sharded.load_full_state_dict(reference.state_dict())
    ids, offsets = torch.tensor([0, 8, 8, 3]), torch.tensor([0, 3, 3, 4])
    with torch.no_grad():
        assert_close(sharded(ids, offsets), reference(ids, offsets))


def test_seeded_init_does_not_depend_on_the_plan():
    specs = [TableSpec("a", 70_000, 2), TableSpec("b", 5, 2)]  # "a" spans two initialisation blocks
    row_wise = ShardedEmbeddingTables(specs, seed=8)
    table_wise = ShardedEmbeddingTables(specs, seed=8, plan=ShardingPlan(1, {"a": TableWise(0), "b": TableWise(0)}))
    assert torch.equal(row_wise.full_state_dict()["weights"], table_wise.full_state_dict()["weights"])


BAD_INPUTS = [
    ("ids", torch.tensor([0.0]), torch.tensor([0, 1]), TypeError),
    ("offsets", torch.tensor([0]), torch.tensor([0, 1], dtype=torch.int32), TypeError),
    ("offsets", torch.tensor([0, 0]), torch.tensor([0, 3, 2]), ValueError),
    ("offsets", torch.tensor([0, 1]), torch.tensor([0, 1]), ValueError),
    ("offsets", torch.tensor([0, 1]), torch.tensor([1, 2]), ValueError),
    ("table 0 ('a')", torch.tensor([9]), torch.tensor([0, 1]), IndexError),
    ("table 0 ('a')", torch.tensor([-1]), torch.tensor([0, 1]), IndexError),
]


@pytest.mark.parametrize("named,ids,offsets,error", BAD_INPUTS)
def test_bad_batch_raises_naming_the_argument(named, ids, offsets, error):
    tables = ShardedEmbeddingTables([TableSpec("a", 9, 3)])
    with pytest.raises(error, match=named.replace("(", r"\(").replace(")", r"\)")):
        tables(ids, offsets)


BAD_CONSTRUCTIONS = [
    (dict(specs=[]), ValueError, "specs"),
    (dict(specs=[TableSpec("a", 3, 2), TableSpec("a", 4, 2)]), ValueError, "unique"),
    (dict(specs=[TableSpec("a", 3, 2), TableSpec("b", 4, 3)]), ValueError, "dim"),
    (dict(specs=[TableSpec("a", 3, 2)], pooling="max"), ValueError, "pooling"),
    (dict(specs=[TableSpec("a", 3, 2)], optimizer="sgd"), TypeError, "optimizer"),
    (dict(specs=[TableSpec("a", 3, 2)], plan="row_wise"), TypeError, "plan"),
    (dict(specs=[TableSpec("a", 3, 2)], plan=ShardingPlan(1, {"b": TableWise(0)})), ValueError, "plan"),
]


@pytest.mark.parametrize("kwargs,error,named", BAD_CONSTRUCTIONS)
def test_bad_construction_raises_naming_the_argument(kwargs, error, named):
    with pytest.raises(error, match=named):
        ShardedEmbeddingTables(**kwargs)


# --------------------------------------------------------------------------------- 2 and 3 ranks
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.label())
@pytest.mark.parametrize("world_size", WORLD_SIZES)
def test_sharded_training_matches_one_process(worlds_by_size, world_size, scenario):
    expected, _ = worlds.train_reference(scenario, world_size)
    got = _ok(worlds_by_size[world_size][0][scenario.label()])["state"]
    for name, value in expected.items():
        assert_close(got[name], value, rtol=1e-5, atol=1e-6, name=name)


@pytest.mark.parametrize("world_size", WORLD_SIZES)
def test_per_sample_weight_gradients_match_one_process(worlds_by_size, world_size):
    scenario = next(s for s in SCENARIOS if s.weighted)
    _, expected = worlds.train_reference(scenario, world_size)
    per_rank = worlds.GLOBAL_BATCH // world_size
    for rank, results in enumerate(worlds_by_size[world_size]):
        got = _ok(results[scenario.label()])["psw_grads"]
        for step, grad in enumerate(got):
            bags = worlds.global_bags(scenario, step, world_size)
            want = worlds.bags_slice(expected[step], bags, rank * per_rank, (rank + 1) * per_rank)
            assert_close(grad, want, rtol=1e-4, atol=1e-5, name=f"rank {rank} step {step}")


@pytest.mark.parametrize("plan_kind", ["row-wise", "table-wise"])
def test_bytes_sent_match_the_traffic_formula(world2, plan_kind):
    """The formula behind the multi-GPU projection in benchmarks/RESULTS.md, against what 2 ranks sent."""
    expected = bytes_per_rank(worlds.TRAFFIC_CONFIG, 2, plan_kind)
    assert [_ok(r[f"traffic {plan_kind}"]) for r in world2] == [expected, expected]


@pytest.mark.parametrize("world_size", WORLD_SIZES)
def test_bad_id_raises_on_every_rank(worlds_by_size, world_size):
    errors = [r["bad_id"] for r in worlds_by_size[world_size]]
    assert all(status == "error" for status, _ in errors)
    assert errors[-1][1].startswith("IndexError") and "'tag'" in errors[-1][1]
    for _, text in errors[:-1]:
        assert text.startswith("InputRejected") and f"rank {world_size - 1}" in text


@pytest.mark.parametrize("world_size", WORLD_SIZES)
def test_ranks_with_different_plans_all_raise(worlds_by_size, world_size):
    errors = [r["mismatched_plan"] for r in worlds_by_size[world_size]]
    assert all(status == "error" and "disagree" in text for status, text in errors)


@pytest.mark.parametrize("world_size", WORLD_SIZES)
def test_plan_for_another_world_size_raises_on_every_rank(worlds_by_size, world_size):
    errors = [r["plan_for_other_world"] for r in worlds_by_size[world_size]]
    assert all(status == "error" and f"world of {world_size + 1} ranks" in text for status, text in errors)


@pytest.mark.parametrize("world_size", WORLD_SIZES)
def test_world_keeps_working_after_rejected_calls(worlds_by_size, world_size):
    values = [_ok(r["still_works"]) for r in worlds_by_size[world_size]]
    assert len(set(values)) == 1
