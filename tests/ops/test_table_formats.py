"""The inference tables' storage formats: int8 within half a quantization step of the table, bfloat16 the cast,
the bytes a table takes, unknown formats refused."""

import pytest
import torch

from recengine.ops.table_formats import TABLE_DTYPES, dequantize_rows, quantize_rows, table_bytes


def test_int8_quantization_error_within_half_a_step_and_bytes():
    E = torch.randn(500, 64, generator=torch.Generator().manual_seed(3))
    E[7] = 0.25  # a constant row: scale 0, read back exactly
    rows, scale_bias = quantize_rows(E, "int8")
    back = dequantize_rows(rows, scale_bias)
    step = scale_bias[:, :1]
    assert bool(((back - E).abs() <= step / 2 + 1e-6).all())
    assert torch.equal(back[7], E[7])
    assert table_bytes(rows, scale_bias) / (E.numel() * 4) <= 0.30


def test_bfloat16_quantization_is_the_cast():
    E = torch.randn(20, 8)
    rows, scale_bias = quantize_rows(E, "bfloat16")
    assert scale_bias is None and rows.dtype == torch.bfloat16
    assert torch.equal(dequantize_rows(rows, None), E.to(torch.bfloat16).float())


def test_quantize_rejects_unknown_dtype():
    with pytest.raises(ValueError, match="dtype"):
        quantize_rows(torch.randn(3, 2), "int4")


def test_float32_is_the_table_itself():
    E = torch.randn(6, 3)
    rows, scale_bias = quantize_rows(E, "float32")
    assert scale_bias is None and torch.equal(rows, E)
    assert table_bytes(rows, None) == E.numel() * 4
    assert set(TABLE_DTYPES) == {"float32", "bfloat16", "int8"}
