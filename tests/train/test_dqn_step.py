import pytest
import torch

from recengine import optim
from recengine.bench.replay import _copy_module, _mlp, _w4_batch, _w4_recengine_step
from recengine.nn import EmbeddingTables, TableSpec
from recengine.train.dqn_step import DQNStep
from tests.train.sync_counting import OpCounter

NUM_ITEMS, DIM, HISTORY, BATCH, HIDDEN, LR = 96, 8, 5, 6, 16, 1e-2
#: ATen ops one step may dispatch (forward, backward and both optimizers: 120 on torch 2.13), with room to spare
MAX_OPS_PER_STEP = 160


def _batch(seed=5):
    return _w4_batch(NUM_ITEMS, HISTORY, BATCH, 0.99, "cpu", torch.Generator().manual_seed(seed))


def _dqn_step(data):
    """A DQNStep starting from the same weights as the bench's W4 recengine step."""
    init = torch.randn(NUM_ITEMS, DIM, generator=torch.Generator().manual_seed(4)) * 0.1
    specs = [TableSpec("item", NUM_ITEMS, DIM)]
    tables = EmbeddingTables(specs, pooling="mean", optimizer=optim.Adam(LR))
    target_tables = EmbeddingTables(specs, pooling="mean").requires_grad_(False)
    with torch.no_grad():
        tables.weights.copy_(init)
        target_tables.weights.copy_(init)
    mlp = _mlp(DIM, HIDDEN)
    return DQNStep(tables, mlp, target_tables, _copy_module(mlp), lr=LR), mlp, tables


def test_dqn_step_matches_the_bench_step_over_two_updates():
    data = _batch()
    reference, ref_mlp, ref_weights = _w4_recengine_step(NUM_ITEMS, DIM, HIDDEN, data, "cpu", LR)
    step, mlp, tables = _dqn_step(data)
    for _ in range(2):
        ref_loss, ref_best = reference()
        loss, best, priority = step(data)
        torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-6)
        assert torch.equal(best, ref_best)
        assert priority.shape == (BATCH,) and bool((priority > 0).all())
    torch.testing.assert_close(tables.weights, ref_weights, rtol=1e-5, atol=1e-6)
    for p, q in zip(mlp.parameters(), ref_mlp.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_dqn_step_reads_nothing_back_and_dispatches_a_bounded_number_of_ops():
    step, _, _ = _dqn_step(_batch())
    step(_batch(6))  # a first step: lazily created optimizer state is not part of the steady state
    step.load(_batch(7))
    with OpCounter() as counter:
        step.run()
    assert counter.host_reads() == {}
    assert 0 < sum(counter.ops.values()) <= MAX_OPS_PER_STEP


@pytest.mark.parametrize(
    "field, value, error",
    [
        ("action", NUM_ITEMS, IndexError),
        ("hist", -1, IndexError),
        ("reward", float("nan"), ValueError),
        ("discount", 1.5, ValueError),
        ("weights", 0.0, ValueError),
    ],
)
def test_dqn_step_checks_the_batch_where_it_enters(field, value, error):
    step, _, _ = _dqn_step(_batch())
    data = _batch()
    data[field].view(-1)[0] = value
    with pytest.raises(error, match=field if field != "action" else "hist/next_hist/action"):
        step(data)


def test_dqn_step_names_a_missing_field():
    step, _, _ = _dqn_step(_batch())
    data = _batch()
    del data["discount"]
    with pytest.raises(KeyError, match="discount"):
        step(data)


def _on(device, step_and_more):
    step = step_and_more[0]
    for module in (step.tables, step.mlp, step.target_tables, step.target_mlp):
        module.to(device)
    return step


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA-graph capture needs a CUDA device")
def test_captured_dqn_step_equals_the_eager_step_on_cuda():
    eager = _on("cuda", _dqn_step(_batch()))
    captured = _on("cuda", _dqn_step(_batch()))
    captured = DQNStep(captured.tables, captured.mlp, captured.target_tables, captured.target_mlp, lr=LR, capture=True)
    eager = DQNStep(eager.tables, eager.mlp, eager.target_tables, eager.target_mlp, lr=LR)
    for seed in range(4):  # eager warm-up, capture, then replays
        loss_e, best_e, prio_e = eager(_batch(seed))
        loss_c, best_c, prio_c = captured(_batch(seed))
        torch.testing.assert_close(loss_c, loss_e)
        assert torch.equal(best_c, best_e)
        torch.testing.assert_close(prio_c, prio_e)
    assert captured._graph_step.graph is not None
    torch.testing.assert_close(captured.tables.weights, eager.tables.weights)
