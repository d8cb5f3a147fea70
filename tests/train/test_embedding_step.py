import pytest
import torch

from recengine import optim
from recengine.nn import EmbeddingTables, TableSpec
from recengine.train.embedding_step import EmbeddingTrainStep
from tests.train.sync_counting import OpCounter

SPECS = [TableSpec("user", 40, 8), TableSpec("item", 70, 8)]
BATCH = 5
#: ATen ops one step may dispatch (lookup, fused backward and update), with room to spare
MAX_OPS_PER_STEP = 40


def _tables(optimizer):
    return EmbeddingTables(SPECS, pooling="mean", optimizer=optimizer, seed=3)


def _batch(seed):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(0, 4, (len(SPECS) * BATCH,), generator=g)
    offsets = torch.cat([torch.zeros(1, dtype=torch.int64), lengths.cumsum(0)])
    bag_table = torch.arange(len(SPECS) * BATCH) // BATCH
    rows = torch.tensor([s.num_rows for s in SPECS])[bag_table].repeat_interleave(lengths)
    ids = (torch.rand(int(offsets[-1]), generator=g) * rows).long()
    grad = torch.randn(BATCH, sum(s.dim for s in SPECS), generator=g)
    return ids, offsets, grad


@pytest.mark.parametrize("make_optimizer", [lambda: optim.RowwiseAdagrad(0.1), lambda: optim.Adam(0.05)])
def test_embedding_step_matches_the_module_step(make_optimizer):
    ours, reference = _tables(make_optimizer()), _tables(make_optimizer())
    step = EmbeddingTrainStep(ours)
    for seed in range(3):
        ids, offsets, grad = _batch(seed)
        expected = reference(ids, offsets)
        expected.backward(grad)
        torch.testing.assert_close(step(ids, offsets, grad), expected.detach())
    torch.testing.assert_close(ours.state_dict(), reference.state_dict())


def test_embedding_step_reads_nothing_back_and_dispatches_a_bounded_number_of_ops():
    step = EmbeddingTrainStep(_tables(optim.Adam(0.05)))
    step(*_batch(0))
    step.load(*_batch(1))
    with OpCounter() as counter:
        step.run()
    assert counter.host_reads() == {}
    assert 0 < sum(counter.ops.values()) <= MAX_OPS_PER_STEP


def test_embedding_step_rejects_a_bad_host_id_before_the_step():
    tables = _tables(optim.RowwiseAdagrad(0.1))
    before = tables.weights.clone()
    ids, offsets, grad = _batch(0)
    ids[-1] = SPECS[1].num_rows  # the last id belongs to the item table
    with pytest.raises(IndexError, match="item"):
        EmbeddingTrainStep(tables)(ids, offsets, grad)
    assert torch.equal(tables.weights, before)


def test_embedding_step_reports_no_error_after_good_batches():
    step = EmbeddingTrainStep(_tables(optim.SGD(0.1)))
    step(*_batch(0))
    step.raise_reported_error()
    assert int(step.error.min()) == torch.iinfo(torch.int64).max


def test_embedding_step_needs_a_fused_optimizer():
    with pytest.raises(ValueError, match="tables"):
        EmbeddingTrainStep(_tables(None))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA-graph capture needs a CUDA device")
def test_captured_embedding_step_equals_the_module_step_on_cuda():
    ours, reference = _tables(optim.Adam(0.05)).cuda(), _tables(optim.Adam(0.05)).cuda()
    step = EmbeddingTrainStep(ours, capture=True)
    ids, offsets, grad = _batch(0)
    for _ in range(4):  # eager warm-up, capture, then replays (one batch shape)
        expected = reference(ids.cuda(), offsets.cuda())
        expected.backward(grad.cuda())
        torch.testing.assert_close(step(ids, offsets, grad), expected.detach())
    assert step._graph_step.graph is not None
    step.raise_reported_error()
    torch.testing.assert_close(ours.state_dict(), reference.state_dict())


def test_embedding_step_raises_the_reported_error_naming_the_table_then_clears_it():
    step = EmbeddingTrainStep(_tables(optim.SGD(0.1)))
    step(*_batch(0))
    step.inputs["ids"][-1] = SPECS[1].num_rows  # as if a device batch held a bad id the kernel reported
    step.error[0] = step.inputs["ids"].shape[0] - 1
    with pytest.raises(IndexError, match="item"):
        step.raise_reported_error()
    assert int(step.error.min()) == torch.iinfo(torch.int64).max
