"""recengine.ops.embedding_bag: the public ops (on the CPU: the C++ kernels, on each instruction-set path) against the
reference. The Triton launchers are tested in tests/kernels/test_embedding_bag.py."""

from __future__ import annotations

import importlib

import pytest
import torch

from recengine.ops import embedding_bag, embedding_bag_fused_update
from recengine.reference.embedding_bag import embedding_bag_reference, fused_update_reference, global_rows
from tests.helpers import (
    BAG_SHAPES,
    OPTIMIZER_SETTINGS,
    assert_close,
    initial_optimizer_state,
    kernel_state_tensors,
    make_bag_inputs,
    small_bag_inputs,
)


# ------------------------------------------------------------------------------------- forward
@pytest.mark.parametrize("shape", BAG_SHAPES)
@pytest.mark.parametrize("pooling", ["sum", "mean"])
@pytest.mark.parametrize("psw", [False, True])
@pytest.mark.parametrize("id_dtype", [torch.int32, torch.int64])
def test_forward_cpu_matches_reference(shape, pooling, psw, id_dtype):
    rows, batch, dim = shape
    w, to, ids, offs, p = make_bag_inputs(len(rows) * 7 + dim, rows, batch, dim, id_dtype=id_dtype, psw=psw, hot=True)
    out = embedding_bag(w, to, ids, offs, p, pooling=pooling)
    assert_close(out, embedding_bag_reference(w, to, ids, offs, p, pooling), name="forward")


def test_forward_empty_bags_and_edges():
    rows, batch, dim = [4, 1], 3, 8
    w = torch.randn(5, dim)
    to = torch.tensor([0, 4, 5])
    # table 0: bags [3 (largest id), 3, 0], [], [0 0 0]; table 1: [], [0], []
    ids = torch.tensor([3, 3, 0, 0, 0, 0, 0])
    offs = torch.tensor([0, 3, 3, 6, 6, 7, 7])
    for pooling in ("sum", "mean"):
        expected = embedding_bag_reference(w, to, ids, offs, None, pooling)
        assert torch.equal(expected[1, :dim], torch.zeros(dim))
        assert_close(embedding_bag(w, to, ids, offs, None, pooling=pooling), expected, name=pooling)
    # every bag empty, and no ids at all
    offs0 = torch.zeros(2 * batch + 1, dtype=torch.int64)
    empty_ids = torch.zeros(0, dtype=torch.int64)
    assert torch.equal(embedding_bag(w, to, empty_ids, offs0), torch.zeros(batch, 2 * dim))
    # a batch of zero samples
    assert embedding_bag(w, to, empty_ids, torch.zeros(1, dtype=torch.int64)).shape == (0, 2 * dim)
    del rows


def test_forward_noncontiguous_inputs():
    w, to, ids, offs, p = make_bag_inputs(5, [9, 14], 4, 16, psw=True)
    expected = embedding_bag_reference(w, to, ids, offs, p, "mean")
    wide = torch.zeros(w.shape[0], 2 * w.shape[1])
    wide[:, ::2] = w
    ids2 = torch.stack([ids, ids]).t().reshape(-1)[::2]
    p2 = torch.stack([p, p], 1)[:, 0]
    offs2 = torch.stack([offs, offs], 1)[:, 1]
    assert not (wide[:, ::2].is_contiguous() or ids2.is_contiguous() or p2.is_contiguous() or offs2.is_contiguous())
    assert_close(embedding_bag(wide[:, ::2], to, ids2, offs2, p2, pooling="mean"), expected)


# ------------------------------------------------------------------------------------ backward
@pytest.mark.parametrize("shape", BAG_SHAPES[:4])
@pytest.mark.parametrize("pooling", ["sum", "mean"])
def test_backward_cpu_matches_reference(shape, pooling):
    rows, batch, dim = shape
    w, to, ids, offs, p = make_bag_inputs(11 + dim, rows, batch, dim, psw=True, hot=True)
    grad = torch.randn(batch, len(rows) * dim, generator=torch.Generator().manual_seed(1))
    w1, p1 = w.clone().requires_grad_(), p.clone().requires_grad_()
    embedding_bag(w1, to, ids, offs, p1, pooling=pooling).backward(grad)
    w2, p2 = w.clone().requires_grad_(), p.clone().requires_grad_()
    embedding_bag_reference(w2, to, ids, offs, p2, pooling).backward(grad)
    assert_close(w1.grad, w2.grad, name="grad weights")
    assert_close(p1.grad, p2.grad, rtol=1e-5, atol=1e-5, name="grad per_sample_weights")


# -------------------------------------------------------------------------------- fused update


@pytest.mark.parametrize("optimizer", list(OPTIMIZER_SETTINGS))
@pytest.mark.parametrize("pooling", ["sum", "mean"])
@pytest.mark.parametrize("psw", [False, True])
@pytest.mark.parametrize("shape", [BAG_SHAPES[1], BAG_SHAPES[2], BAG_SHAPES[3], BAG_SHAPES[4]])
def test_fused_update_cpu_matches_dense_math(optimizer, pooling, psw, shape):
    rows, batch, dim = shape
    w, to, ids, offs, p = make_bag_inputs(17 + dim, rows, batch, dim, psw=psw, hot=True, id_dtype=torch.int32)
    hp = OPTIMIZER_SETTINGS[optimizer]
    state = initial_optimizer_state(optimizer, w.shape[0], dim)
    weights, kstate = w.clone(), {k: v.clone() for k, v in state.items()}
    w_ref = w.clone()
    for step in (1, 2):  # two steps: the weights and the state carry over
        grad = torch.randn(batch, len(rows) * dim, generator=torch.Generator().manual_seed(step))
        w_ref, state = fused_update_reference(
            w_ref, to, ids, offs, grad, p, pooling, optimizer=optimizer, state=state, step=step, **hp
        )
        s1, s2 = kernel_state_tensors(optimizer, kstate)
        embedding_bag_fused_update(
            grad, weights, to, ids, offs, p, pooling=pooling, optimizer=optimizer, state1=s1, state2=s2, step=step, **hp
        )
        assert_close(weights, w_ref, rtol=1e-5, atol=1e-5, name=f"{optimizer} weights, step {step}")
        for k in state:
            assert_close(kstate[k], state[k], rtol=1e-5, atol=1e-6, name=f"{optimizer} state {k}")
    # rows the batch never refers to are bit-identical
    touched = torch.zeros(w.shape[0], dtype=torch.bool)
    touched[global_rows(to, ids, offs)] = True
    assert torch.equal(weights[~touched], w[~touched])


@pytest.mark.parametrize("psw", [False, True])
def test_cpu_kernels_multithreaded_size(psw):
    """Enough ids (> 2 x 32k) that the C++ kernels run their OpenMP teams with every core."""
    rows, batch, dim = [3000, 500, 40], 700, 64
    w, to, ids, offs, p = make_bag_inputs(41, rows, batch, dim, max_len=80, psw=psw, empty_frac=0.05)
    assert ids.numel() > 70000
    assert_close(
        embedding_bag(w, to, ids, offs, p, pooling="mean"),
        embedding_bag_reference(w, to, ids, offs, p, "mean"),
        name="forward",
    )
    grad = torch.randn(batch, len(rows) * dim, generator=torch.Generator().manual_seed(5))
    state = {"sum": torch.rand(w.shape[0], generator=torch.Generator().manual_seed(6))}
    w_ref, s_ref = fused_update_reference(
        w, to, ids, offs, grad, p, "mean", optimizer="rowwise_adagrad", lr=0.1, eps=1e-3, state=state
    )
    weights, s1 = w.clone(), state["sum"].clone()
    embedding_bag_fused_update(
        grad, weights, to, ids, offs, p, pooling="mean", optimizer="rowwise_adagrad", lr=0.1, eps=1e-3, state1=s1
    )
    assert_close(weights, w_ref, rtol=1e-5, atol=1e-5, name="weights")
    assert_close(s1, s_ref["sum"], rtol=1e-5, atol=1e-6, name="state")


def test_fused_update_duplicates_summed_before_adagrad():
    """One row hit 3 times in one bag and once in another: g = 4*grad, not four separate updates."""
    dim = 4
    w = torch.zeros(3, dim)
    to = torch.tensor([0, 3])
    ids = torch.tensor([1, 1, 1, 1])
    offs = torch.tensor([0, 3, 4])
    grad = torch.ones(2, dim)
    state = torch.zeros(3)
    embedding_bag_fused_update(grad, w, to, ids, offs, optimizer="rowwise_adagrad", lr=1.0, eps=0.0, state1=state)
    assert torch.equal(state, torch.tensor([0.0, 16.0, 0.0]))  # mean((1+1+1+1)^2)
    assert_close(w[1], torch.full((dim,), -1.0))  # -lr * 4 / sqrt(16)
    assert torch.equal(w[[0, 2]], torch.zeros(2, dim))


# ---------------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    "mutate, exc, match",
    [
        (lambda a: a.update(ids=a["ids"].float()), TypeError, "ids"),
        (lambda a: a.update(offsets=a["offsets"].int()), TypeError, "offsets"),
        (lambda a: a.update(weights=a["weights"].double()), TypeError, "weights"),
        (lambda a: a.update(table_offsets=a["table_offsets"].int()), TypeError, "table_offsets"),
        (lambda a: a.update(per_sample_weights=a["per_sample_weights"][:-1]), ValueError, "per_sample_weights"),
        (lambda a: a.update(pooling="max"), ValueError, "pooling"),
        (lambda a: a.update(pooling=None), TypeError, "pooling"),
        (lambda a: a.update(ids=a["ids"][:, None]), ValueError, "ids"),
        (lambda a: a.update(offsets=a["offsets"][:-1]), ValueError, "offsets"),
        (lambda a: a.update(offsets=a["offsets"].flip(0)), ValueError, "offsets"),
        (lambda a: a.update(offsets=a["offsets"] + 1), ValueError, "offsets"),
        (lambda a: a.update(ids=a["ids"][:-1], per_sample_weights=a["per_sample_weights"][:-1]), ValueError, "offsets"),
        (lambda a: a.update(table_offsets=torch.tensor([0, 6, 99])), ValueError, "table_offsets"),
        (lambda a: a.update(table_offsets=torch.tensor([0])), ValueError, "table_offsets"),
        (lambda a: a.update(ids=a["ids"].to("meta")), ValueError, "device"),
        (lambda a: a.update(weights="not a tensor"), TypeError, "weights"),
    ],
)
@pytest.mark.parametrize("checker", ["native", "torch"])
def test_bad_inputs_raise(mutate, exc, match, checker, monkeypatch):
    """Every bad input raises before a kernel runs, with the CPU (C++) value checks and the torch ones used
    for CUDA tensors."""
    ops_module = importlib.import_module("recengine.ops.embedding_bag")  # the module (its name is also the op's)
    if checker == "torch":
        monkeypatch.setattr(
            ops_module, "_check_values", lambda r, to, i, o, names: ops_module._check_values_torch(r, to, i, o, names)
        )
    w, to, ids, offs, p = small_bag_inputs()
    args = dict(weights=w, table_offsets=to, ids=ids, offsets=offs, per_sample_weights=p, pooling="sum")
    mutate(args)
    with pytest.raises(exc, match=match):
        embedding_bag(**args)


@pytest.mark.parametrize("bad_id, table", [(6, 0), (-1, 0), (4, 1), (2**31 - 1, 1)])
@pytest.mark.parametrize("id_dtype", [torch.int32, torch.int64])
def test_out_of_range_id_raises_index_error_and_changes_nothing(bad_id, table, id_dtype):
    from recengine.ops.embedding_bag import _check_values_torch

    w, to, ids, offs, p = small_bag_inputs()
    ids = ids.to(id_dtype)
    pos = int(offs[table * 3]) + 1  # the second id of the table's first bag
    ids[pos] = bad_id
    message = rf"ids\[{pos}\] = {bad_id} is outside table {table} \('t{table}'\), which has {[6, 4][table]} rows"
    with pytest.raises(IndexError, match=message):
        embedding_bag(w, to, ids, offs, p, table_names=["t0", "t1"])
    with pytest.raises(IndexError, match=message):  # the checks used for CUDA tensors say the same
        _check_values_torch(w.shape[0], to, ids, offs, ["t0", "t1"])
    for optimizer in ("sgd", "rowwise_adagrad", "adam"):
        weights, s1, s2 = w.clone(), torch.zeros(10), None
        if optimizer == "adam":
            s1, s2 = torch.zeros(10, 8), torch.zeros(10, 8)
        grad = torch.ones(3, 16)
        with pytest.raises(IndexError, match=f"table {table}"):
            embedding_bag_fused_update(
                grad, weights, to, ids, offs, p, optimizer=optimizer, lr=1.0, state1=s1, state2=s2
            )
        # the C++ kernel checks too, before writing anything
        with pytest.raises(IndexError, match=f"outside table {table}"):
            embedding_bag_fused_update(
                grad, weights, to, ids, offs, p, optimizer=optimizer, lr=1.0, state1=s1, state2=s2, check_values=False
            )
        assert torch.equal(weights, w) and not s1.any()
    # the raw op (no Python validation) raises from the C++ kernel instead of reading out of bounds
    with pytest.raises(IndexError, match=f"outside table {table}"):
        torch.ops.recengine.embedding_bag(w, to, ids, offs, p, pooling="sum")


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(optimizer="lamb", lr=1.0), ValueError, "optimizer"),
        (dict(grad_output=torch.ones(3, 8), optimizer="sgd", lr=1.0), ValueError, "grad_output"),
        (dict(optimizer="rowwise_adagrad", lr=1.0), TypeError, "state1"),
        (dict(optimizer="rowwise_adagrad", lr=1.0, state1=torch.zeros(3)), ValueError, "state1"),
        (dict(weights=torch.zeros(8, 10).t(), optimizer="sgd", lr=1.0), ValueError, "contiguous"),
    ],
)
def test_fused_update_argument_checks(kwargs, exc, match):
    w, to, ids, offs, _ = small_bag_inputs()
    args = dict(grad_output=torch.ones(3, 16), weights=w)
    args.update(kwargs)
    grad, weights = args.pop("grad_output"), args.pop("weights")
    with pytest.raises(exc, match=match):
        embedding_bag_fused_update(grad, weights, to, ids, offs, **args)


# ------------------------------------------------------------------------- torch.library, compile
def test_opcheck():
    w, to, ids, offs, p = make_bag_inputs(31, [5, 9], 3, 8, psw=True, hot=True)
    for pooling in ("sum", "mean"):
        torch.library.opcheck(
            torch.ops.recengine.embedding_bag.default,
            (w.clone().requires_grad_(), to, ids, offs, p.clone().requires_grad_(), pooling),
        )
        torch.library.opcheck(torch.ops.recengine.embedding_bag.default, (w, to, ids.int(), offs, None, pooling))
    grad = torch.randn(3, 16)
    torch.library.opcheck(torch.ops.recengine.embedding_bag_backward.default, (grad, w, to, ids, offs, p, "mean"))
    torch.library.opcheck(torch.ops.recengine.embedding_bag_psw_backward.default, (grad, w, to, ids, offs, "sum"))
    torch.library.opcheck(
        torch.ops.recengine.embedding_bag_fused_update.default,
        (
            grad,
            w.clone(),
            to,
            ids,
            offs,
            p,
            "sum",
            "rowwise_adagrad",
            torch.zeros(w.shape[0]),
            torch.zeros(0),
            0.1,
            1e-8,
            0.9,
            0.999,
            torch.tensor(1),
        ),
    )


def test_torch_compile_fullgraph():
    w, to, ids, offs, p = make_bag_inputs(37, [5, 9], 3, 8, psw=True)

    def fn(weights, per_sample_weights):
        return (embedding_bag(weights, to, ids, offs, per_sample_weights, pooling="mean") * 2).sum(dim=1)

    compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")
    w1 = w.clone().requires_grad_()
    out = compiled(w1, p)
    w2 = w.clone().requires_grad_()
    expected = (embedding_bag_reference(w2, to, ids, offs, p, "mean") * 2).sum(dim=1)
    assert_close(out, expected)
    out.sum().backward()
    expected.sum().backward()
    assert_close(w1.grad, w2.grad)


@pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="the public op's CUDA dispatch needs a GPU (CPU CI "
    "covers the same Triton kernels under TRITON_INTERPRET=1 above)",
)
@pytest.mark.parametrize("pooling", ["sum", "mean"])
def test_public_op_on_cuda(pooling):
    w, to, ids, offs, p = make_bag_inputs(43, [20, 1, 13], 6, 64, psw=True, hot=True, id_dtype=torch.int32)
    grad = torch.randn(6, 3 * 64, generator=torch.Generator().manual_seed(7))
    w1, p1 = w.cuda().requires_grad_(), p.cuda().requires_grad_()
    out = embedding_bag(w1, to.cuda(), ids.cuda(), offs.cuda(), p1, pooling=pooling)
    w2, p2 = w.clone().requires_grad_(), p.clone().requires_grad_()
    expected = embedding_bag_reference(w2, to, ids, offs, p2, pooling)
    assert_close(out, expected, rtol=1e-5, atol=1e-5)
    out.backward(grad.cuda())
    expected.backward(grad)
    assert_close(w1.grad, w2.grad, rtol=1e-5, atol=1e-5)
    assert_close(p1.grad, p2.grad, rtol=1e-4, atol=1e-4)
    state = {"sum": torch.zeros(w.shape[0])}
    w_ref, s_ref = fused_update_reference(
        w, to, ids, offs, grad, p, pooling, optimizer="rowwise_adagrad", lr=0.1, state=state
    )
    weights, s1 = w.cuda(), torch.zeros(w.shape[0], device="cuda")
    embedding_bag_fused_update(
        grad.cuda(),
        weights,
        to.cuda(),
        ids.cuda(),
        offs.cuda(),
        p.cuda(),
        pooling=pooling,
        optimizer="rowwise_adagrad",
        lr=0.1,
        state1=s1,
    )
    assert_close(weights, w_ref, rtol=1e-5, atol=1e-5)
    assert_close(s1, s_ref["sum"], rtol=1e-5, atol=1e-6)
    bad = ids.cuda().clone()
    bad[0] = 10**6
    with pytest.raises(IndexError, match="outside table"):
        embedding_bag(w.cuda(), to.cuda(), bad, offs.cuda())


@pytest.mark.parametrize("isa", [0, 1, 2])
def test_cpu_instruction_set_variants(isa):
    """Each hot-loop variant (portable, AVX2, AVX-512) against the reference, where the CPU has it."""
    from recengine._native import cpu_ops

    _C = cpu_ops()

    best = _C.embedding_bag_isa()
    if _C.embedding_bag_isa(isa) != isa:
        _C.embedding_bag_isa(best)
        pytest.skip(f"this CPU does not support instruction set level {isa}")
    try:
        for dim in (32, 64, 128):
            rows, batch = [40, 7, 25], 6
            w, to, ids, offs, p = make_bag_inputs(47 + dim, rows, batch, dim, psw=True, hot=True)
            for pooling in ("sum", "mean"):
                assert_close(
                    embedding_bag(w, to, ids, offs, p, pooling=pooling),
                    embedding_bag_reference(w, to, ids, offs, p, pooling),
                    name=f"forward D={dim}",
                )
            grad = torch.randn(batch, len(rows) * dim, generator=torch.Generator().manual_seed(dim))
            for optimizer, hp in OPTIMIZER_SETTINGS.items():
                state = initial_optimizer_state(optimizer, w.shape[0], dim)
                w_ref, s_ref = fused_update_reference(
                    w, to, ids, offs, grad, p, "mean", optimizer=optimizer, state=state, step=2, **hp
                )
                weights, kst = w.clone(), {k: v.clone() for k, v in state.items()}
                s1, s2 = kernel_state_tensors(optimizer, kst)
                embedding_bag_fused_update(
                    grad,
                    weights,
                    to,
                    ids,
                    offs,
                    p,
                    pooling="mean",
                    optimizer=optimizer,
                    state1=s1,
                    state2=s2,
                    step=2,
                    **hp,
                )
                assert_close(weights, w_ref, rtol=1e-5, atol=1e-5, name=f"{optimizer} D={dim}")
                for k in s_ref:
                    assert_close(kst[k], s_ref[k], rtol=1e-5, atol=1e-6, name=f"{optimizer} {k} D={dim}")
            w1 = w.clone().requires_grad_()
            embedding_bag(w1, to, ids, offs, p, pooling="sum").backward(grad)
            w2 = w.clone().requires_grad_()
            embedding_bag_reference(w2, to, ids, offs, p, "sum").backward(grad)
            assert_close(w1.grad, w2.grad, rtol=1e-5, atol=1e-5, name=f"dense grad D={dim}")
    finally:
        _C.embedding_bag_isa(best)
