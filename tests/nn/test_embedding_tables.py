"""recengine.nn.EmbeddingTables: forward, dense-gradient mode, fused optimizers, state_dict."""
from __future__ import annotations

import io

import pytest
import torch

import recengine
from recengine.nn import EmbeddingTables, TableSpec
from recengine.optim import SGD, Adam, RowwiseAdagrad
from recengine.reference.embedding_bag import embedding_bag_reference, fused_update_reference
from tests.helpers import assert_close

SPECS = [TableSpec("user", 9, 16), TableSpec("item", 30, 16), TableSpec("genre", 1, 16)]
BATCH = 5


def make_batch(seed: int, specs=SPECS, batch=BATCH, max_len=4, id_dtype=torch.int64):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(0, max_len + 1, (len(specs) * batch,), generator=g)
    offsets = torch.zeros(len(specs) * batch + 1, dtype=torch.int64)
    offsets[1:] = lengths.cumsum(0)
    ids = torch.cat([torch.randint(0, min(specs[j // batch].num_rows, 4), (int(lengths[j]),), generator=g)
                     for j in range(len(specs) * batch)]).to(id_dtype)
    return ids, offsets


def test_top_level_exports():
    assert recengine.TableSpec is TableSpec
    assert recengine.optim.RowwiseAdagrad is RowwiseAdagrad


@pytest.mark.parametrize("pooling", ["sum", "mean"])
def test_forward_matches_reference(pooling):
    tables = EmbeddingTables(SPECS, pooling=pooling, seed=0)
    ids, offsets = make_batch(1, id_dtype=torch.int32)
    psw = torch.rand(ids.numel(), generator=torch.Generator().manual_seed(2))
    out = tables(ids, offsets, psw)
    assert out.shape == (BATCH, 3 * 16)
    expected = embedding_bag_reference(tables.weights.detach(), tables.table_offsets, ids, offsets, psw, pooling)
    assert_close(out, expected)


def test_dense_mode_gradient_and_torch_optimizer():
    tables = EmbeddingTables(SPECS, seed=0)
    assert isinstance(tables.weights, torch.nn.Parameter)
    ids, offsets = make_batch(3)
    grad = torch.randn(BATCH, 48, generator=torch.Generator().manual_seed(4))
    tables(ids, offsets).backward(grad)
    w = tables.weights.detach().clone().requires_grad_()
    embedding_bag_reference(w, tables.table_offsets, ids, offsets).backward(grad)
    assert_close(tables.weights.grad, w.grad)
    before = tables.weights.detach().clone()
    torch.optim.SGD(tables.parameters(), lr=0.5).step()
    assert_close(tables.weights.detach(), before - 0.5 * w.grad)


@pytest.mark.parametrize("optimizer, name, hp, state_keys", [
    (SGD(lr=0.2), "sgd", dict(lr=0.2), {}),
    (RowwiseAdagrad(lr=0.2, eps=1e-4), "rowwise_adagrad", dict(lr=0.2, eps=1e-4), {"sum": "momentum1"}),
    (Adam(lr=0.05, betas=(0.8, 0.9), eps=1e-5), "adam", dict(lr=0.05, betas=(0.8, 0.9), eps=1e-5),
     {"m": "momentum1", "v": "momentum2"}),
])
@pytest.mark.parametrize("pooling", ["sum", "mean"])
def test_fused_training_matches_dense_math(optimizer, name, hp, state_keys, pooling):
    tables = EmbeddingTables(SPECS, pooling=pooling, optimizer=optimizer, seed=5)
    assert not any(True for _ in tables.parameters())  # nothing for a dense optimizer to touch
    w_ref = tables.weights.clone()
    state = {k: torch.zeros_like(getattr(tables, v)) for k, v in state_keys.items()}
    for step in (1, 2, 3):
        ids, offsets = make_batch(10 + step)
        psw = torch.rand(ids.numel(), generator=torch.Generator().manual_seed(step))
        grad = torch.randn(BATCH, 48, generator=torch.Generator().manual_seed(20 + step))
        out = tables(ids, offsets, psw)
        assert_close(out, embedding_bag_reference(w_ref, tables.table_offsets, ids, offsets, psw, pooling))
        out.backward(grad)
        w_ref, state = fused_update_reference(w_ref, tables.table_offsets, ids, offsets, grad, psw, pooling,
                                              optimizer=name, state=state, step=step, **hp)
        assert tables.weights.grad is None
        assert_close(tables.weights, w_ref, rtol=1e-5, atol=1e-6, name=f"weights after step {step}")
        for k, buf in state_keys.items():
            assert_close(getattr(tables, buf), state[k], rtol=1e-5, atol=1e-6, name=buf)
    if name == "adam":
        assert int(tables.step) == 3


def test_fused_per_sample_weight_gradient_uses_rows_before_update():
    tables = EmbeddingTables(SPECS, optimizer=SGD(lr=1.0), seed=6)
    ids, offsets = make_batch(7)
    psw = torch.rand(ids.numel(), generator=torch.Generator().manual_seed(8)).requires_grad_()
    grad = torch.randn(BATCH, 48, generator=torch.Generator().manual_seed(9))
    w0 = tables.weights.clone()
    tables(ids, offsets, psw).backward(grad)
    p2 = psw.detach().clone().requires_grad_()
    embedding_bag_reference(w0, tables.table_offsets, ids, offsets, p2).backward(grad)
    assert_close(psw.grad, p2.grad, rtol=1e-5, atol=1e-5)
    assert not torch.equal(tables.weights, w0)


def test_no_grad_forward_does_not_update():
    tables = EmbeddingTables(SPECS, optimizer=RowwiseAdagrad(lr=0.1), seed=0)
    w0 = tables.weights.clone()
    ids, offsets = make_batch(1)
    with torch.no_grad():
        out = tables(ids, offsets)
    assert not out.requires_grad
    assert torch.equal(tables.weights, w0)


def test_table_views_and_names():
    tables = EmbeddingTables(SPECS, optimizer=SGD(lr=0.1), seed=0)
    item = tables.table("item")
    assert item.shape == (30, 16)
    assert item.data_ptr() == tables.weights[9].data_ptr()
    assert tables.table_offsets.tolist() == [0, 9, 39, 40]
    assert tables.names == ("user", "item", "genre") and tables.num_tables == 3
    with pytest.raises(KeyError, match="nope"):
        tables.table("nope")


@pytest.mark.parametrize("optimizer", [None, RowwiseAdagrad(lr=0.3), Adam(lr=0.1)])
def test_state_dict_round_trip(optimizer):
    tables = EmbeddingTables(SPECS, optimizer=optimizer, seed=1)
    ids, offsets = make_batch(2)
    grad = torch.randn(BATCH, 48, generator=torch.Generator().manual_seed(3))
    tables(ids, offsets).backward(grad)
    if optimizer is None:
        tables.weights.grad = None
    buf = io.BytesIO()
    torch.save(tables.state_dict(), buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)
    other = EmbeddingTables(SPECS, optimizer=optimizer, seed=99)
    other.load_state_dict(loaded)
    assert set(loaded) == set(tables.state_dict())
    for k, v in tables.state_dict().items():
        assert torch.equal(other.state_dict()[k], v), k
    if optimizer is not None:  # the same next step from the loaded copy
        tables(ids, offsets).backward(grad)
        other(ids, offsets).backward(grad)
        assert torch.equal(other.weights, tables.weights)


@pytest.mark.parametrize("build, exc, match", [
    (lambda: EmbeddingTables([TableSpec("a", 3, 4), TableSpec("a", 3, 4)]), ValueError, "unique"),
    (lambda: EmbeddingTables([]), ValueError, "at least one"),
    (lambda: TableSpec("a", 0, 4), ValueError, "num_rows"),
    (lambda: TableSpec("a", 3, 4.0), TypeError, "dim"),
    (lambda: EmbeddingTables(SPECS, optimizer=torch.optim.SGD), TypeError, "optimizer"),
    (lambda: EmbeddingTables(SPECS, pooling="max"), ValueError, "pooling"),
    (lambda: RowwiseAdagrad(lr=-1.0), ValueError, "lr"),
    (lambda: Adam(lr=0.1, betas=(0.9, 1.0)), ValueError, "betas"),
])
def test_bad_specs_raise_naming_the_argument(build, exc, match):
    with pytest.raises(exc, match=match):
        build()


def test_out_of_range_id_raises_naming_the_table_and_changes_nothing():
    tables = EmbeddingTables(SPECS, optimizer=RowwiseAdagrad(lr=0.1), seed=0)
    w0, s0 = tables.weights.clone(), tables.momentum1.clone()
    ids, offsets = make_batch(4)
    ids[int(offsets[BATCH]) if offsets[BATCH] < offsets[2 * BATCH] else 0] = 30  # 30 rows in "item": out of range
    with pytest.raises(IndexError, match=r"= 30 is outside table \d \('(item|user)'\)"):
        tables(ids, offsets)
    assert torch.equal(tables.weights, w0) and torch.equal(tables.momentum1, s0)
