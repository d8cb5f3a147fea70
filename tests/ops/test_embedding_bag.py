"""recengine.ops.embedding_bag: every backend (C++ through the op, Triton launchers) against the reference."""
from __future__ import annotations

import importlib

import pytest
import torch

from recengine.kernels import embedding_bag as kernels
from recengine.ops import embedding_bag, embedding_bag_fused_update
from recengine.reference.embedding_bag import embedding_bag_reference, fused_update_reference, global_rows
from tests.helpers import TRITON_DEVICE, assert_close


def make_inputs(seed: int, rows: list[int], batch: int, dim: int, *, max_len: int = 5, id_dtype=torch.int64,
                psw: bool = False, empty_frac: float = 0.2, hot: bool = False):
    """Random table-major jagged input: some empty bags; `hot` draws most ids from a few rows (duplicates)."""
    g = torch.Generator().manual_seed(seed)
    num_tables = len(rows)
    table_offsets = torch.tensor([0] + rows, dtype=torch.int64).cumsum(0)
    weights = torch.randn(int(table_offsets[-1]), dim, generator=g)
    lengths = torch.randint(0, max_len + 1, (num_tables * batch,), generator=g)
    lengths[torch.rand(num_tables * batch, generator=g) < empty_frac] = 0
    offsets = torch.zeros(num_tables * batch + 1, dtype=torch.int64)
    offsets[1:] = lengths.cumsum(0)
    parts = []
    for j in range(num_tables * batch):
        n = int(lengths[j])
        r = rows[j // batch]
        top = min(r, 3) if hot else r
        parts.append(torch.randint(0, top, (n,), generator=g))
    ids = torch.cat(parts).to(id_dtype) if parts else torch.zeros(0, dtype=id_dtype)
    weights_psw = torch.rand(ids.numel(), generator=g) + 0.5 if psw else None
    return weights, table_offsets, ids, offsets, weights_psw


SHAPES = [  # (rows per table, batch, dim): one table, many, mixed sizes, single-row table, dims on every path
    ([7], 4, 8),
    ([20, 1, 13], 5, 64),
    ([3, 50, 9, 1, 17, 4], 3, 32),
    ([11, 6], 6, 5),
    ([30, 12], 4, 128),
]


def _to(device, *tensors):
    return [None if t is None else t.to(device) for t in tensors]


# ------------------------------------------------------------------------------------- forward
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("pooling", ["sum", "mean"])
@pytest.mark.parametrize("psw", [False, True])
@pytest.mark.parametrize("id_dtype", [torch.int32, torch.int64])
def test_forward_cpu_matches_reference(shape, pooling, psw, id_dtype):
    rows, batch, dim = shape
    w, to, ids, offs, p = make_inputs(len(rows) * 7 + dim, rows, batch, dim, id_dtype=id_dtype, psw=psw, hot=True)
    out = embedding_bag(w, to, ids, offs, p, pooling=pooling)
    assert_close(out, embedding_bag_reference(w, to, ids, offs, p, pooling), name="forward")


@pytest.mark.parametrize("shape", SHAPES[:4])
@pytest.mark.parametrize("pooling", ["sum", "mean"])
@pytest.mark.parametrize("psw", [False, True])
def test_forward_triton_matches_reference(shape, pooling, psw):
    rows, batch, dim = shape
    w, to, ids, offs, p = make_inputs(3 + dim, rows, batch, dim, id_dtype=torch.int32, psw=psw, hot=True)
    expected = embedding_bag_reference(w, to, ids, offs, p, pooling)
    out, err = kernels.embedding_bag(*_to(TRITON_DEVICE, w, to, ids, offs, p), pooling == "mean")
    assert err.tolist() == [kernels.NO_ERROR] * 3
    assert_close(out, expected, name="triton forward")


def test_forward_triton_reports_bad_values_and_stays_in_bounds():
    """The Triton forward checks the values itself (the public op on CUDA relies on it): the first bad id's
    position, the first bag and the first table whose layout is broken; such bags read nothing."""
    w = torch.randn(13, 8)
    to = torch.tensor([0, 9, 13])  # table 0: 9 rows, table 1: 4 rows; 3 bags each
    ids = torch.tensor([0, 8, 3, 1, 2, 0, 3, 1, 2, 3])
    offs = torch.tensor([0, 2, 3, 5, 7, 8, 10])
    NO = kernels.NO_ERROR
    run = lambda i, o, t=to: kernels.embedding_bag(*_to(TRITON_DEVICE, w, t, i, o), None, False)[1].tolist()  # noqa: E731
    assert run(ids, offs) == [NO, NO, NO]
    bad = ids.clone()
    bad[[2, 4]] = torch.tensor([9, -1])  # 9 = rows of table 0 (one past its largest id)
    assert run(bad, offs) == [2, NO, NO]
    bad = ids.clone()
    bad[6] = 4  # in table 1 (4 rows): one past its largest id
    assert run(bad, offs) == [6, NO, NO]
    o = offs.clone()
    o[2] = 6  # bag 2 then ends (5) before it starts (6)
    assert run(ids, o) == [NO, 2, NO]
    o = offs.clone()
    o[-1] = 11  # the last bag runs past the ids
    assert run(ids, o) == [NO, 5, NO]
    o = offs.clone()
    o[0] = 1
    assert run(ids, o)[1] == 0
    t = to.clone()
    t[-1] = 14  # table 1 reaches past the weights
    assert run(ids, offs, t) == [NO, NO, 1]
    # through the op's CUDA implementation (here on the interpreter): the report becomes the usual errors
    ops_module = importlib.import_module("recengine.ops.embedding_bag")
    bad = ids.clone()
    bad[2] = 9
    with pytest.raises(IndexError, match=r"ids\[2\] = 9 is outside table 0"):
        ops_module._embedding_bag_cuda(*_to(TRITON_DEVICE, w, to, bad, offs), None, "sum")
    with pytest.raises(ValueError, match="offsets"):
        ops_module._embedding_bag_cuda(*_to(TRITON_DEVICE, w, to, ids, o), None, "sum")


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
        assert_close(kernels.embedding_bag(*_to(TRITON_DEVICE, w, to, ids, offs), None, pooling == "mean")[0], expected)
    # every bag empty, and no ids at all
    offs0 = torch.zeros(2 * batch + 1, dtype=torch.int64)
    empty_ids = torch.zeros(0, dtype=torch.int64)
    assert torch.equal(embedding_bag(w, to, empty_ids, offs0), torch.zeros(batch, 2 * dim))
    # a batch of zero samples
    assert embedding_bag(w, to, empty_ids, torch.zeros(1, dtype=torch.int64)).shape == (0, 2 * dim)
    del rows


def test_forward_noncontiguous_inputs():
    w, to, ids, offs, p = make_inputs(5, [9, 14], 4, 16, psw=True)
    expected = embedding_bag_reference(w, to, ids, offs, p, "mean")
    wide = torch.zeros(w.shape[0], 2 * w.shape[1])
    wide[:, ::2] = w
    ids2 = torch.stack([ids, ids]).t().reshape(-1)[::2]
    p2 = torch.stack([p, p], 1)[:, 0]
    offs2 = torch.stack([offs, offs], 1)[:, 1]
    assert not (wide[:, ::2].is_contiguous() or ids2.is_contiguous() or p2.is_contiguous() or offs2.is_contiguous())
    assert_close(embedding_bag(wide[:, ::2], to, ids2, offs2, p2, pooling="mean"), expected)


# ------------------------------------------------------------------------------------ backward
@pytest.mark.parametrize("shape", SHAPES[:4])
@pytest.mark.parametrize("pooling", ["sum", "mean"])
def test_backward_cpu_matches_reference(shape, pooling):
    rows, batch, dim = shape
    w, to, ids, offs, p = make_inputs(11 + dim, rows, batch, dim, psw=True, hot=True)
    grad = torch.randn(batch, len(rows) * dim, generator=torch.Generator().manual_seed(1))
    w1, p1 = w.clone().requires_grad_(), p.clone().requires_grad_()
    embedding_bag(w1, to, ids, offs, p1, pooling=pooling).backward(grad)
    w2, p2 = w.clone().requires_grad_(), p.clone().requires_grad_()
    embedding_bag_reference(w2, to, ids, offs, p2, pooling).backward(grad)
    assert_close(w1.grad, w2.grad, name="grad weights")
    assert_close(p1.grad, p2.grad, rtol=1e-5, atol=1e-5, name="grad per_sample_weights")


@pytest.mark.parametrize("shape", SHAPES[:3])
@pytest.mark.parametrize("pooling", ["sum", "mean"])
def test_backward_triton_matches_reference(shape, pooling):
    rows, batch, dim = shape
    w, to, ids, offs, p = make_inputs(13 + dim, rows, batch, dim, psw=True, hot=True)
    grad = torch.randn(batch, len(rows) * dim, generator=torch.Generator().manual_seed(2))
    w2, p2 = w.clone().requires_grad_(), p.clone().requires_grad_()
    embedding_bag_reference(w2, to, ids, offs, p2, pooling).backward(grad)
    dev = _to(TRITON_DEVICE, grad, to, ids, offs, p)
    dw = kernels.embedding_bag_backward(dev[0], w.to(TRITON_DEVICE), dev[1], dev[2], dev[3], dev[4], pooling == "mean")
    assert_close(dw, w2.grad, rtol=1e-5, atol=1e-5, name="triton grad weights")
    dp = kernels.embedding_bag_psw_backward(dev[0], w.to(TRITON_DEVICE), dev[1], dev[2], dev[3], pooling == "mean")
    assert_close(dp, p2.grad, rtol=1e-5, atol=1e-5, name="triton grad psw")


# -------------------------------------------------------------------------------- fused update
OPTIMIZERS = {
    "sgd": dict(lr=0.3),
    "rowwise_adagrad": dict(lr=0.3, eps=1e-3),
    "adam": dict(lr=0.05, eps=1e-6, betas=(0.8, 0.95)),
}


def _initial_state(optimizer, num_rows, dim, seed=0):
    g = torch.Generator().manual_seed(seed)
    if optimizer == "rowwise_adagrad":
        return {"sum": torch.rand(num_rows, generator=g)}
    if optimizer == "adam":
        return {"m": torch.randn(num_rows, dim, generator=g) * 0.1, "v": torch.rand(num_rows, dim, generator=g)}
    return {}


def _kernel_state(optimizer, state):
    if optimizer == "rowwise_adagrad":
        return state["sum"], None
    if optimizer == "adam":
        return state["m"], state["v"]
    return None, None


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize("pooling", ["sum", "mean"])
@pytest.mark.parametrize("psw", [False, True])
@pytest.mark.parametrize("shape", [SHAPES[1], SHAPES[2], SHAPES[3], SHAPES[4]])
def test_fused_update_cpu_matches_dense_math(optimizer, pooling, psw, shape):
    rows, batch, dim = shape
    w, to, ids, offs, p = make_inputs(17 + dim, rows, batch, dim, psw=psw, hot=True, id_dtype=torch.int32)
    hp = OPTIMIZERS[optimizer]
    state = _initial_state(optimizer, w.shape[0], dim)
    weights, kstate = w.clone(), {k: v.clone() for k, v in state.items()}
    w_ref = w.clone()
    for step in (1, 2):  # two steps: the weights and the state carry over
        grad = torch.randn(batch, len(rows) * dim, generator=torch.Generator().manual_seed(step))
        w_ref, state = fused_update_reference(w_ref, to, ids, offs, grad, p, pooling,
                                              optimizer=optimizer, state=state, step=step, **hp)
        s1, s2 = _kernel_state(optimizer, kstate)
        embedding_bag_fused_update(grad, weights, to, ids, offs, p, pooling=pooling, optimizer=optimizer, state1=s1,
                                   state2=s2, step=step, **hp)
        assert_close(weights, w_ref, rtol=1e-5, atol=1e-5, name=f"{optimizer} weights, step {step}")
        for k in state:
            assert_close(kstate[k], state[k], rtol=1e-5, atol=1e-6, name=f"{optimizer} state {k}")
    # rows the batch never refers to are bit-identical
    touched = torch.zeros(w.shape[0], dtype=torch.bool)
    touched[global_rows(to, ids, offs)] = True
    assert torch.equal(weights[~touched], w[~touched])


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize("pooling", ["sum", "mean"])
def test_fused_update_triton_matches_dense_math(optimizer, pooling):
    rows, batch, dim = [20, 1, 13], 4, 8
    w, to, ids, offs, p = make_inputs(23, rows, batch, dim, psw=True, hot=True)
    hp = OPTIMIZERS[optimizer]
    state = _initial_state(optimizer, w.shape[0], dim)
    grad = torch.randn(batch, len(rows) * dim, generator=torch.Generator().manual_seed(3))
    w_ref, state_ref = fused_update_reference(w, to, ids, offs, grad, p, pooling, optimizer=optimizer, state=state,
                                              step=3, **hp)
    dw = w.to(TRITON_DEVICE).clone()
    kst = {k: v.to(TRITON_DEVICE).clone() for k, v in state.items()}
    s1, s2 = _kernel_state(optimizer, kst)
    b1, b2 = hp.get("betas", (0.9, 0.999))
    dev = _to(TRITON_DEVICE, grad, to, ids, offs, p)
    code = {"sgd": kernels.SGD, "rowwise_adagrad": kernels.ROWWISE_ADAGRAD, "adam": kernels.ADAM}[optimizer]
    kernels.embedding_bag_fused_update(dev[0], dw, dev[1], dev[2], dev[3], dev[4], pooling == "mean", code,
                                       s1, s2, hp["lr"], hp.get("eps", 0.0), b1, b2, 1 - b1**3, 1 - b2**3)
    assert_close(dw, w_ref, rtol=1e-5, atol=1e-5, name=f"triton {optimizer} weights")
    for k in state_ref:
        assert_close(kst[k], state_ref[k], rtol=1e-5, atol=1e-6, name=f"triton {optimizer} state {k}")


@pytest.mark.parametrize("psw", [False, True])
def test_cpu_kernels_multithreaded_size(psw):
    """Enough ids (> 2 x 32k) that the C++ kernels run their OpenMP teams with every core."""
    rows, batch, dim = [3000, 500, 40], 700, 64
    w, to, ids, offs, p = make_inputs(41, rows, batch, dim, max_len=80, psw=psw, empty_frac=0.05)
    assert ids.numel() > 70000
    assert_close(embedding_bag(w, to, ids, offs, p, pooling="mean"),
                 embedding_bag_reference(w, to, ids, offs, p, "mean"), name="forward")
    grad = torch.randn(batch, len(rows) * dim, generator=torch.Generator().manual_seed(5))
    state = {"sum": torch.rand(w.shape[0], generator=torch.Generator().manual_seed(6))}
    w_ref, s_ref = fused_update_reference(w, to, ids, offs, grad, p, "mean", optimizer="rowwise_adagrad", lr=0.1,
                                          eps=1e-3, state=state)
    weights, s1 = w.clone(), state["sum"].clone()
    embedding_bag_fused_update(grad, weights, to, ids, offs, p, pooling="mean", optimizer="rowwise_adagrad", lr=0.1,
                               eps=1e-3, state1=s1)
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
def _good():
    return make_inputs(29, [6, 4], 3, 8, psw=True, empty_frac=0.0)


@pytest.mark.parametrize("mutate, exc, match", [
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
])
@pytest.mark.parametrize("checker", ["native", "torch"])
def test_bad_inputs_raise(mutate, exc, match, checker, monkeypatch):
    """Every bad input raises before a kernel runs, with the CPU (C++) value checks and the torch ones used
    for CUDA tensors."""
    ops_module = importlib.import_module("recengine.ops.embedding_bag")  # the module (its name is also the op's)
    if checker == "torch":
        monkeypatch.setattr(ops_module, "_check_values", lambda r, to, i, o, names: ops_module._check_values_torch(
            r, to, i, o, names))
    w, to, ids, offs, p = _good()
    args = dict(weights=w, table_offsets=to, ids=ids, offsets=offs, per_sample_weights=p, pooling="sum")
    mutate(args)
    with pytest.raises(exc, match=match):
        embedding_bag(**args)


@pytest.mark.parametrize("bad_id, table", [(6, 0), (-1, 0), (4, 1), (2**31 - 1, 1)])
@pytest.mark.parametrize("id_dtype", [torch.int32, torch.int64])
def test_out_of_range_id_raises_index_error_and_changes_nothing(bad_id, table, id_dtype):
    from recengine.ops.embedding_bag import _check_values_torch

    w, to, ids, offs, p = _good()
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
            embedding_bag_fused_update(grad, weights, to, ids, offs, p, optimizer=optimizer, lr=1.0, state1=s1,
                                       state2=s2)
        # the C++ kernel checks too, before writing anything
        with pytest.raises(IndexError, match=f"outside table {table}"):
            embedding_bag_fused_update(grad, weights, to, ids, offs, p, optimizer=optimizer, lr=1.0, state1=s1,
                                       state2=s2, check_values=False)
        assert torch.equal(weights, w) and not s1.any()
    # the raw op (no Python validation) raises from the C++ kernel instead of reading out of bounds
    with pytest.raises(IndexError, match=f"outside table {table}"):
        torch.ops.recengine.embedding_bag(w, to, ids, offs, p, pooling="sum")


def test_triton_drops_out_of_range_ids_in_bounds():
    w, to, ids, offs, p = _good()
    ids[1] = 1000
    ids[-1] = -5
    keep = torch.ones(ids.numel(), dtype=torch.bool)
    keep[[1, ids.numel() - 1]] = False
    p_masked = p * keep
    expected = embedding_bag_reference(w, to, ids.clamp(0, 3), offs, p_masked)
    out, _ = kernels.embedding_bag(*_to(TRITON_DEVICE, w, to, ids, offs, p), False)
    assert_close(out, expected)


def test_fused_update_argument_checks():
    w, to, ids, offs, p = _good()
    grad = torch.ones(3, 16)
    with pytest.raises(ValueError, match="optimizer"):
        embedding_bag_fused_update(grad, w, to, ids, offs, optimizer="lamb", lr=1.0)
    with pytest.raises(ValueError, match="grad_output"):
        embedding_bag_fused_update(grad[:, :8], w, to, ids, offs, optimizer="sgd", lr=1.0)
    with pytest.raises(TypeError, match="state1"):
        embedding_bag_fused_update(grad, w, to, ids, offs, optimizer="rowwise_adagrad", lr=1.0)
    with pytest.raises(ValueError, match="state1"):
        embedding_bag_fused_update(grad, w, to, ids, offs, optimizer="rowwise_adagrad", lr=1.0, state1=torch.zeros(3))
    with pytest.raises(ValueError, match="contiguous"):
        embedding_bag_fused_update(grad, torch.zeros(8, 10).t(), to, ids, offs, optimizer="sgd", lr=1.0)


# ------------------------------------------------------------------------- torch.library, compile
def test_opcheck():
    w, to, ids, offs, p = make_inputs(31, [5, 9], 3, 8, psw=True, hot=True)
    for pooling in ("sum", "mean"):
        torch.library.opcheck(torch.ops.recengine.embedding_bag.default,
                              (w.clone().requires_grad_(), to, ids, offs, p.clone().requires_grad_(), pooling))
        torch.library.opcheck(torch.ops.recengine.embedding_bag.default, (w, to, ids.int(), offs, None, pooling))
    grad = torch.randn(3, 16)
    torch.library.opcheck(torch.ops.recengine.embedding_bag_backward.default, (grad, w, to, ids, offs, p, "mean"))
    torch.library.opcheck(torch.ops.recengine.embedding_bag_psw_backward.default, (grad, w, to, ids, offs, "sum"))
    torch.library.opcheck(torch.ops.recengine.embedding_bag_fused_update.default,
                          (grad, w.clone(), to, ids, offs, p, "sum", "rowwise_adagrad", torch.zeros(w.shape[0]),
                           torch.zeros(0), 0.1, 1e-8, 0.9, 0.999, 1))


def test_torch_compile_fullgraph():
    w, to, ids, offs, p = make_inputs(37, [5, 9], 3, 8, psw=True)

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


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the public op's CUDA dispatch needs a GPU (CPU CI "
                    "covers the same Triton kernels under TRITON_INTERPRET=1 above)")
@pytest.mark.parametrize("pooling", ["sum", "mean"])
def test_public_op_on_cuda(pooling):
    w, to, ids, offs, p = make_inputs(43, [20, 1, 13], 6, 64, psw=True, hot=True, id_dtype=torch.int32)
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
    w_ref, s_ref = fused_update_reference(w, to, ids, offs, grad, p, pooling, optimizer="rowwise_adagrad", lr=0.1,
                                          state=state)
    weights, s1 = w.cuda(), torch.zeros(w.shape[0], device="cuda")
    embedding_bag_fused_update(grad.cuda(), weights, to.cuda(), ids.cuda(), offs.cuda(), p.cuda(), pooling=pooling,
                               optimizer="rowwise_adagrad", lr=0.1, state1=s1)
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
            w, to, ids, offs, p = make_inputs(47 + dim, rows, batch, dim, psw=True, hot=True)
            for pooling in ("sum", "mean"):
                assert_close(embedding_bag(w, to, ids, offs, p, pooling=pooling),
                             embedding_bag_reference(w, to, ids, offs, p, pooling), name=f"forward D={dim}")
            grad = torch.randn(batch, len(rows) * dim, generator=torch.Generator().manual_seed(dim))
            for optimizer, hp in OPTIMIZERS.items():
                state = _initial_state(optimizer, w.shape[0], dim)
                w_ref, s_ref = fused_update_reference(w, to, ids, offs, grad, p, "mean", optimizer=optimizer,
                                                      state=state, step=2, **hp)
                weights, kst = w.clone(), {k: v.clone() for k, v in state.items()}
                s1, s2 = _kernel_state(optimizer, kst)
                embedding_bag_fused_update(grad, weights, to, ids, offs, p, pooling="mean", optimizer=optimizer,
                                           state1=s1, state2=s2, step=2, **hp)
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
