"""recengine.kernels.quantized_tables: the Triton launchers (CUDA, or the interpreter on the CPU) against the
plain-PyTorch references over the dequantized tables."""

import pytest

from recengine.kernels import quantized_tables as triton_qt
from recengine.ops.table_formats import dequantize_rows, quantize_rows
from recengine.reference import policy as policy_ref
from recengine.reference import quantized_tables as ref
from tests.helpers import TRITON_DEVICE, assert_close, make_bag_inputs, make_catalog_case


@pytest.mark.parametrize("fmt", ["int8", "bfloat16"])
@pytest.mark.parametrize("excl", [True, False])
def test_triton_topk_matches_reference(fmt, excl):
    Q, E, kw = make_catalog_case(B=19, N=300, D=24, excl=excl)
    rows, sb = quantize_rows(E, fmt)
    d = TRITON_DEVICE
    off, ids = kw.get("exclude_offsets"), kw.get("exclude_ids")
    s, i = triton_qt.catalog_topk(
        Q.to(d),
        rows.to(d),
        None if sb is None else sb.to(d),
        7,
        kw["bias"].to(d),
        None if off is None else off.to(d),
        None if ids is None else ids.to(d),
    )
    r_s, r_i = ref.quantized_catalog_topk_reference(Q, rows, sb, 7, **kw)
    assert_close(s.cpu(), r_s, rtol=1e-4, atol=1e-4, name="scores")
    logits = policy_ref.catalog_logits(Q, dequantize_rows(rows, sb), **kw)
    assert_close(logits.gather(1, i.cpu()), r_s, rtol=1e-4, atol=1e-4, name="logits of the returned ids")
    assert (i.cpu() == r_i).float().mean() > 0.95


@pytest.mark.parametrize("fmt", ["int8", "bfloat16"])
@pytest.mark.parametrize("mean", [False, True])
def test_triton_embedding_bag_matches_reference(fmt, mean):
    weights, table_offsets, ids, offsets, _ = make_bag_inputs(2, [20, 1, 13], batch=5, dim=12)
    rows, sb = quantize_rows(weights, fmt)
    d = TRITON_DEVICE
    out = triton_qt.embedding_bag(
        rows.to(d), None if sb is None else sb.to(d), table_offsets.to(d), ids.to(d), offsets.to(d), mean
    )
    expected = ref.quantized_embedding_bag_reference(rows, sb, table_offsets, ids, offsets, "mean" if mean else "sum")
    assert_close(out.cpu(), expected, rtol=1e-5, atol=1e-5)
