"""recengine.nn.EmbeddingTables: forward, dense-gradient mode, fused optimizers, state_dict."""

from __future__ import annotations

import io

import pytest
import torch

import recengine
from recengine.nn import EmbeddingTables, TableSpec
from recengine.optim import SGD, Adam, RowwiseAdagrad
from recengine.reference.embedding_bag import embedding_bag_reference, fused_update_reference, split_tables
from tests.helpers import assert_close

SPECS = [TableSpec("user", 9, 16), TableSpec("item", 30, 16), TableSpec("genre", 1, 16)]
BATCH = 5


def make_batch(seed: int, specs=SPECS, batch=BATCH, max_len=4, id_dtype=torch.int64):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(0, max_len + 1, (len(specs) * batch,), generator=g)
    offsets = torch.zeros(len(specs) * batch + 1, dtype=torch.int64)
    offsets[1:] = lengths.cumsum(0)
    ids = torch.cat(
        [
            torch.randint(0, min(specs[j // batch].num_rows, 4), (int(lengths[j]),), generator=g)
            for j in range(len(specs) * batch)
        ]
    ).to(id_dtype)
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


@pytest.mark.parametrize(
    "optimizer, name, hp, state_keys",
    [
        (SGD(lr=0.2), "sgd", dict(lr=0.2), {}),
        (RowwiseAdagrad(lr=0.2, eps=1e-4), "rowwise_adagrad", dict(lr=0.2, eps=1e-4), {"sum": "momentum1"}),
        (
            Adam(lr=0.05, betas=(0.8, 0.9), eps=1e-5),
            "adam",
            dict(lr=0.05, betas=(0.8, 0.9), eps=1e-5),
            {"m": "momentum1", "v": "momentum2"},
        ),
    ],
)
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
        w_ref, state = fused_update_reference(
            w_ref, tables.table_offsets, ids, offsets, grad, psw, pooling, optimizer=name, state=state, step=step, **hp
        )
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


@pytest.mark.parametrize(
    "build, exc, match",
    [
        (lambda: EmbeddingTables([TableSpec("a", 3, 4), TableSpec("a", 3, 4)]), ValueError, "unique"),
        (lambda: EmbeddingTables([]), ValueError, "at least one"),
        (lambda: TableSpec("a", 0, 4), ValueError, "num_rows"),
        (lambda: TableSpec("a", 3, 4.0), TypeError, "dim"),
        (lambda: EmbeddingTables(SPECS, optimizer=torch.optim.SGD), TypeError, "optimizer"),
        (lambda: EmbeddingTables(SPECS, pooling="max"), ValueError, "pooling"),
        (lambda: RowwiseAdagrad(lr=-1.0), ValueError, "lr"),
        (lambda: Adam(lr=0.1, betas=(0.9, 1.0)), ValueError, "betas"),
    ],
)
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


# ------------------------------------------------------------------------------ per-table dims
MIXED_SPECS = [TableSpec("user", 9, 8), TableSpec("item", 30, 16), TableSpec("genre", 4, 8), TableSpec("tag", 6, 4)]
OPTIMIZERS = [
    (SGD(lr=0.2), "sgd", dict(lr=0.2), {}),
    (RowwiseAdagrad(lr=0.2, eps=1e-4), "rowwise_adagrad", dict(lr=0.2, eps=1e-4), {"sum": "momentum1"}),
    (
        Adam(lr=0.05, betas=(0.8, 0.9), eps=1e-5),
        "adam",
        dict(lr=0.05, betas=(0.8, 0.9), eps=1e-5),
        {"m": "momentum1", "v": "momentum2"},
    ),
]


def per_table_bag_reference(weights: list[torch.Tensor], ids, offsets, psw, pooling):
    """One nn.functional.embedding_bag per table, outputs side by side: the plain user code."""
    batch = (offsets.numel() - 1) // len(weights)
    outs = []
    for t, (w, (t_ids, t_offsets)) in enumerate(zip(weights, split_tables(ids, offsets, len(weights)))):
        start, end = int(offsets[t * batch]), int(offsets[(t + 1) * batch])
        t_psw = None if psw is None else psw[start:end]
        # nn.EmbeddingBag takes per-sample weights with sum pooling only: mean is that sum over the bag size
        pooled = torch.nn.functional.embedding_bag(t_ids, w, t_offsets[:-1], mode="sum", per_sample_weights=t_psw)
        if pooling == "mean":
            pooled = pooled / (t_offsets[1:] - t_offsets[:-1]).clamp(min=1)[:, None]
        outs.append(pooled)
    return torch.cat(outs, dim=1)


def group_state(tables: EmbeddingTables, name: str, buffer: str) -> torch.Tensor:
    """The optimizer state rows of table `name` (its group's buffer, sliced like table(name))."""
    dim = tables.dims[tables.names.index(name)]
    group = next(g for g in tables.groups if g.dim == dim)
    t = group.names.index(name)
    start, end = int(group.table_offsets[t]), int(group.table_offsets[t + 1])
    return getattr(group, buffer)[start:end]


@pytest.mark.parametrize("pooling", ["sum", "mean"])
def test_mixed_dims_forward_is_the_per_table_concatenation(pooling):
    tables = EmbeddingTables(MIXED_SPECS, pooling=pooling, seed=3)
    ids, offsets = make_batch(5, specs=MIXED_SPECS)
    psw = torch.rand(ids.numel(), generator=torch.Generator().manual_seed(6))
    out = tables(ids, offsets, psw)
    assert out.shape == (BATCH, tables.output_dim) == (BATCH, 8 + 16 + 8 + 4)
    expected = per_table_bag_reference([tables.table(s.name).detach() for s in MIXED_SPECS], ids, offsets, psw, pooling)
    assert_close(out, expected)


def test_mixed_dims_dense_gradient_matches_per_table_embedding_bags():
    tables = EmbeddingTables(MIXED_SPECS, seed=3)
    ids, offsets = make_batch(7, specs=MIXED_SPECS)
    grad = torch.randn(BATCH, tables.output_dim, generator=torch.Generator().manual_seed(8))
    tables(ids, offsets).backward(grad)
    ref = [tables.table(s.name).detach().clone().requires_grad_() for s in MIXED_SPECS]
    per_table_bag_reference(ref, ids, offsets, None, "sum").backward(grad)
    for spec, w in zip(MIXED_SPECS, ref):
        dim = spec.dim
        group = next(g for g in tables.groups if g.dim == dim)
        t = group.names.index(spec.name)
        start, end = int(group.table_offsets[t]), int(group.table_offsets[t + 1])
        assert_close(group.weights.grad[start:end], w.grad, name=spec.name)


@pytest.mark.parametrize("optimizer, name, hp, state_keys", OPTIMIZERS)
@pytest.mark.parametrize("pooling", ["sum", "mean"])
def test_mixed_dims_fused_training_matches_per_table_reference(optimizer, name, hp, state_keys, pooling):
    tables = EmbeddingTables(MIXED_SPECS, pooling=pooling, optimizer=optimizer, seed=5)
    assert not any(True for _ in tables.parameters())
    ref_w = {s.name: tables.table(s.name).clone() for s in MIXED_SPECS}
    ref_state = {
        s.name: {k: torch.zeros_like(group_state(tables, s.name, v)) for k, v in state_keys.items()}
        for s in MIXED_SPECS
    }
    for step in (1, 2):
        ids, offsets = make_batch(30 + step, specs=MIXED_SPECS)
        psw = torch.rand(ids.numel(), generator=torch.Generator().manual_seed(step))
        grad = torch.randn(BATCH, tables.output_dim, generator=torch.Generator().manual_seed(40 + step))
        out = tables(ids, offsets, psw)
        assert_close(out, per_table_bag_reference([ref_w[s.name] for s in MIXED_SPECS], ids, offsets, psw, pooling))
        out.backward(grad)
        col = 0
        batch_of = split_tables(ids, offsets, len(MIXED_SPECS))
        for t, spec in enumerate(MIXED_SPECS):
            start = int(offsets[t * BATCH])
            t_ids, t_offsets = batch_of[t]
            t_psw = psw[start : start + t_ids.numel()]
            one_table = torch.tensor([0, spec.num_rows])
            ref_w[spec.name], ref_state[spec.name] = fused_update_reference(
                ref_w[spec.name],
                one_table,
                t_ids,
                t_offsets,
                grad[:, col : col + spec.dim],
                t_psw,
                pooling,
                optimizer=name,
                state=ref_state[spec.name],
                step=step,
                **hp,
            )
            col += spec.dim
            assert_close(
                tables.table(spec.name), ref_w[spec.name], rtol=1e-5, atol=1e-6, name=f"{spec.name} after step {step}"
            )
            for k, buf in state_keys.items():
                assert_close(
                    group_state(tables, spec.name, buf),
                    ref_state[spec.name][k],
                    rtol=1e-5,
                    atol=1e-6,
                    name=f"{spec.name} {buf}",
                )


def test_mixed_dims_state_dict_names_the_groups():
    tables = EmbeddingTables(MIXED_SPECS, optimizer=RowwiseAdagrad(lr=0.1), seed=0)
    assert set(tables.state_dict()) == {
        "groups.0.weights",
        "groups.0.momentum1",
        "groups.1.weights",
        "groups.1.momentum1",
        "groups.2.weights",
        "groups.2.momentum1",
    }
    assert tables.dims == (8, 16, 8, 4)


def test_mixed_dims_out_of_range_id_names_the_table():
    tables = EmbeddingTables(MIXED_SPECS, seed=0)
    ids, offsets = make_batch(4, specs=MIXED_SPECS)
    first_tag = int(offsets[3 * BATCH])
    if first_tag == ids.numel():  # make sure the last table has an id to spoil
        ids, offsets = torch.cat([ids, torch.tensor([0])]), torch.cat([offsets[:-1], offsets[-1:] + 1])
    ids[-1] = 6  # "tag" has 6 rows
    with pytest.raises(IndexError, match=r"= 6 is outside table \d \('tag'\)"):
        tables(ids, offsets)


# ------------------------------------------------------------------------- torch.compile / export
def dynamic_output_shapes(specs):
    """What TorchRec users set for compile: tables of several dims split the batch per dim, whose size
    depends on the data (torch.export needs nothing)."""
    return torch._dynamo.config.patch(capture_dynamic_output_shape_ops=len({s.dim for s in specs}) > 1)


@pytest.mark.parametrize(
    "optimizer",
    [None, SGD(lr=0.1), RowwiseAdagrad(lr=0.1), Adam(lr=0.1)],
    ids=["dense", "sgd", "rowwise_adagrad", "adam"],
)
@pytest.mark.parametrize("specs", [SPECS, MIXED_SPECS], ids=["one_dim", "mixed_dims"])
def test_compiles_without_graph_breaks(optimizer, specs):
    tables = EmbeddingTables(specs, optimizer=optimizer, seed=0)
    ids, offsets = make_batch(1, specs=specs)
    with dynamic_output_shapes(specs):
        explanation = torch._dynamo.explain(tables)(ids, offsets)
    torch._dynamo.reset()
    assert explanation.graph_break_count == 0, explanation.break_reasons


@pytest.mark.parametrize(
    "optimizer", [SGD(lr=0.1), RowwiseAdagrad(lr=0.1), Adam(lr=0.1)], ids=["sgd", "rowwise_adagrad", "adam"]
)
def test_compiled_fused_training_matches_eager(optimizer):
    eager = EmbeddingTables(MIXED_SPECS, optimizer=optimizer, seed=2)
    compiled_tables = EmbeddingTables(MIXED_SPECS, optimizer=optimizer, seed=2)
    compiled = torch.compile(compiled_tables, fullgraph=True, backend="aot_eager")
    for step in (1, 2):
        ids, offsets = make_batch(50 + step, specs=MIXED_SPECS)
        grad = torch.randn(BATCH, eager.output_dim, generator=torch.Generator().manual_seed(step))
        eager(ids, offsets).backward(grad)
        with dynamic_output_shapes(MIXED_SPECS):
            compiled(ids, offsets).backward(grad)
    torch._dynamo.reset()
    for name, value in eager.state_dict().items():
        assert_close(compiled_tables.state_dict()[name], value, name=name)


@pytest.mark.parametrize("specs", [SPECS, MIXED_SPECS], ids=["one_dim", "mixed_dims"])
def test_exported_program_matches_eager(specs):
    tables = EmbeddingTables(specs, optimizer=RowwiseAdagrad(lr=0.1), seed=0)
    ids, offsets = make_batch(2, specs=specs)
    exported = torch.export.export(tables, (ids, offsets), dynamic_shapes=({0: torch.export.Dim.AUTO}, None))
    other_ids, other_offsets = make_batch(3, specs=specs)
    with torch.no_grad():
        assert_close(exported.module()(other_ids, other_offsets), tables(other_ids, other_offsets))


@pytest.mark.parametrize("mode", ["eager", "compiled", "exported"])
def test_out_of_range_id_raises_in_every_mode(mode):
    tables = EmbeddingTables(SPECS, optimizer=RowwiseAdagrad(lr=0.1), seed=0)
    ids, offsets = make_batch(4)
    if mode == "compiled":
        run = torch.compile(tables, fullgraph=True, backend="aot_eager")
    elif mode == "exported":
        run = torch.export.export(tables, (ids, offsets), dynamic_shapes=({0: torch.export.Dim.AUTO}, None)).module()
    else:
        run = tables
    bad = torch.full_like(ids, 1000)  # outside every table
    with pytest.raises(IndexError, match=r"ids\[0\] = 1000 is outside table 0"):
        run(bad, offsets)
    torch._dynamo.reset()
