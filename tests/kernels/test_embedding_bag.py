"""recengine.kernels.embedding_bag: the Triton launchers (CUDA, or the interpreter on the CPU) against the
reference, including their own value checks and in-bounds masking."""

from __future__ import annotations

import importlib

import pytest
import torch

pytest.importorskip("triton", reason="triton is the optional gpu extra; these tests run the Triton kernels")

from recengine.kernels import embedding_bag as kernels  # noqa: E402
from recengine.reference.embedding_bag import embedding_bag_reference, fused_update_reference  # noqa: E402
from tests.helpers import (  # noqa: E402
    BAG_SHAPES,
    OPTIMIZER_SETTINGS,
    TRITON_DEVICE,
    assert_close,
    initial_optimizer_state,
    kernel_state_tensors,
    make_bag_inputs,
    small_bag_inputs,
    to_device,
)


@pytest.mark.parametrize("shape", BAG_SHAPES[:4])
@pytest.mark.parametrize("pooling", ["sum", "mean"])
@pytest.mark.parametrize("psw", [False, True])
def test_forward_triton_matches_reference(shape, pooling, psw):
    rows, batch, dim = shape
    w, to, ids, offs, p = make_bag_inputs(3 + dim, rows, batch, dim, id_dtype=torch.int32, psw=psw, hot=True)
    expected = embedding_bag_reference(w, to, ids, offs, p, pooling)
    out, err = kernels.embedding_bag(*to_device(TRITON_DEVICE, w, to, ids, offs, p), pooling == "mean")
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
    run = lambda i, o, t=to: kernels.embedding_bag(*to_device(TRITON_DEVICE, w, t, i, o), None, False)[1].tolist()  # noqa: E731
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
        ops_module._embedding_bag_cuda(*to_device(TRITON_DEVICE, w, to, bad, offs), None, "sum")
    with pytest.raises(ValueError, match="offsets"):
        ops_module._embedding_bag_cuda(*to_device(TRITON_DEVICE, w, to, ids, o), None, "sum")


@pytest.mark.parametrize("shape", BAG_SHAPES[:3])
@pytest.mark.parametrize("pooling", ["sum", "mean"])
def test_backward_triton_matches_reference(shape, pooling):
    rows, batch, dim = shape
    w, to, ids, offs, p = make_bag_inputs(13 + dim, rows, batch, dim, psw=True, hot=True)
    grad = torch.randn(batch, len(rows) * dim, generator=torch.Generator().manual_seed(2))
    w2, p2 = w.clone().requires_grad_(), p.clone().requires_grad_()
    embedding_bag_reference(w2, to, ids, offs, p2, pooling).backward(grad)
    dev = to_device(TRITON_DEVICE, grad, to, ids, offs, p)
    dw = kernels.embedding_bag_backward(dev[0], w.to(TRITON_DEVICE), dev[1], dev[2], dev[3], dev[4], pooling == "mean")
    assert_close(dw, w2.grad, rtol=1e-5, atol=1e-5, name="triton grad weights")
    dp = kernels.embedding_bag_psw_backward(dev[0], w.to(TRITON_DEVICE), dev[1], dev[2], dev[3], pooling == "mean")
    assert_close(dp, p2.grad, rtol=1e-5, atol=1e-5, name="triton grad psw")


@pytest.mark.parametrize("optimizer", list(OPTIMIZER_SETTINGS))
@pytest.mark.parametrize("pooling", ["sum", "mean"])
def test_fused_update_triton_matches_dense_math(optimizer, pooling):
    rows, batch, dim = [20, 1, 13], 4, 8
    w, to, ids, offs, p = make_bag_inputs(23, rows, batch, dim, psw=True, hot=True)
    hp = OPTIMIZER_SETTINGS[optimizer]
    state = initial_optimizer_state(optimizer, w.shape[0], dim)
    grad = torch.randn(batch, len(rows) * dim, generator=torch.Generator().manual_seed(3))
    w_ref, state_ref = fused_update_reference(
        w, to, ids, offs, grad, p, pooling, optimizer=optimizer, state=state, step=3, **hp
    )
    dw = w.to(TRITON_DEVICE).clone()
    kst = {k: v.to(TRITON_DEVICE).clone() for k, v in state.items()}
    s1, s2 = kernel_state_tensors(optimizer, kst)
    b1, b2 = hp.get("betas", (0.9, 0.999))
    dev = to_device(TRITON_DEVICE, grad, to, ids, offs, p)
    code = {"sgd": kernels.SGD, "rowwise_adagrad": kernels.ROWWISE_ADAGRAD, "adam": kernels.ADAM}[optimizer]
    kernels.embedding_bag_fused_update(
        dev[0],
        dw,
        dev[1],
        dev[2],
        dev[3],
        dev[4],
        pooling == "mean",
        code,
        s1,
        s2,
        hp["lr"],
        hp.get("eps", 0.0),
        b1,
        b2,
        1 - b1**3,
        1 - b2**3,
    )
    assert_close(dw, w_ref, rtol=1e-5, atol=1e-5, name=f"triton {optimizer} weights")
    for k in state_ref:
        assert_close(kst[k], state_ref[k], rtol=1e-5, atol=1e-6, name=f"triton {optimizer} state {k}")


@pytest.mark.parametrize("optimizer", list(OPTIMIZER_SETTINGS))
def test_static_fused_update_triton_matches_dense_math(optimizer):
    rows, batch, dim = [20, 1, 13], 4, 8
    w, to, ids, offs, p = make_bag_inputs(23, rows, batch, dim, psw=True, hot=True)
    ids[0] = 1000  # out of its table: skipped, as by the data-dependent launcher
    keep = torch.ones(ids.shape[0], dtype=torch.bool)
    keep[0] = False
    hp = OPTIMIZER_SETTINGS[optimizer]
    state = initial_optimizer_state(optimizer, w.shape[0], dim)
    grad = torch.randn(batch, len(rows) * dim, generator=torch.Generator().manual_seed(3))
    p_ref = torch.where(keep, p, torch.zeros_like(p))  # the skipped id contributes nothing
    w_ref, state_ref = fused_update_reference(
        w,
        to,
        torch.where(keep, ids, torch.zeros_like(ids)),
        offs,
        grad,
        p_ref,
        "sum",
        optimizer=optimizer,
        state=state,
        step=3,
        **hp,
    )
    dw = w.to(TRITON_DEVICE).clone()
    kst = {k: v.to(TRITON_DEVICE).clone() for k, v in state.items()}
    s1, s2 = kernel_state_tensors(optimizer, kst)
    b1, b2 = hp.get("betas", (0.9, 0.999))
    dev = to_device(TRITON_DEVICE, grad, to, ids, offs, p)
    code = {"sgd": kernels.SGD, "rowwise_adagrad": kernels.ROWWISE_ADAGRAD, "adam": kernels.ADAM}[optimizer]
    corrections = torch.tensor([1 - b1**3, 1 - b2**3], dtype=torch.float32, device=TRITON_DEVICE)
    kernels.embedding_bag_fused_update_static(
        dev[0], dw, *dev[1:], False, code, s1, s2, hp["lr"], hp.get("eps", 0.0), b1, b2, corrections
    )
    assert_close(dw, w_ref, rtol=1e-5, atol=1e-5, name=f"triton static {optimizer} weights")
    for k in state_ref:
        assert_close(kst[k], state_ref[k], rtol=1e-5, atol=1e-6, name=f"triton static {optimizer} state {k}")


def test_triton_drops_out_of_range_ids_in_bounds():
    w, to, ids, offs, p = small_bag_inputs()
    ids[1] = 1000
    ids[-1] = -5
    keep = torch.ones(ids.numel(), dtype=torch.bool)
    keep[[1, ids.numel() - 1]] = False
    p_masked = p * keep
    expected = embedding_bag_reference(w, to, ids.clamp(0, 3), offs, p_masked)
    out, _ = kernels.embedding_bag(*to_device(TRITON_DEVICE, w, to, ids, offs, p), False)
    assert_close(out, expected)


def test_forward_empty_bags_and_edges():
    w = torch.randn(5, 8)
    to = torch.tensor([0, 4, 5])
    # table 0: bags [3 (largest id), 3, 0], [], [0 0 0]; table 1: [], [0], []
    ids = torch.tensor([3, 3, 0, 0, 0, 0, 0])
    offs = torch.tensor([0, 3, 3, 6, 6, 7, 7])
    for pooling in ("sum", "mean"):
        expected = embedding_bag_reference(w, to, ids, offs, None, pooling)
        out, _ = kernels.embedding_bag(*to_device(TRITON_DEVICE, w, to, ids, offs), None, pooling == "mean")
        assert_close(out, expected, name=pooling)
