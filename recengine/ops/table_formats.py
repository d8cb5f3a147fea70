"""The storage formats of an inference item table: what the quantized-table ops read, the serving tables write,
and the reference dequantizes (pure PyTorch; imports nothing of recengine).

An inference table stores an embedding table (N, D) float32 in fewer bytes, for serving:

* ``"int8"`` (FBGEMM's row-wise layout idea): ``codes`` (N, D) int8 and ``scale_bias`` (N, 2) float32 per row,
  the row read back as ``scale * codes + bias``. Quantization maps each row's [min, max] onto the 256 codes
  (round to nearest), so the error of an entry is at most scale / 2 = (max - min) / 510. A row costs
  D + 8 bytes instead of 4 D.
* ``"bfloat16"``: the table cast to bfloat16 (round to nearest even), ``scale_bias`` is None; 2 D bytes a row.
* ``"float32"``: the table as it is.
"""

from __future__ import annotations

import torch

__all__ = ["TABLE_DTYPES", "quantize_rows", "dequantize_rows", "table_bytes"]

#: the storage formats of an inference table
TABLE_DTYPES = ("float32", "bfloat16", "int8")


def quantize_rows(table: torch.Tensor, dtype: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(stored rows, scale_bias or None) of the float32 `table` (N, D) in `dtype` (one of TABLE_DTYPES)."""
    if dtype not in TABLE_DTYPES:
        raise ValueError(f"dtype: expected one of {TABLE_DTYPES}, got {dtype!r}")
    if not isinstance(table, torch.Tensor) or table.dtype != torch.float32 or table.dim() != 2:
        raise TypeError(f"table: expected a (N, D) float32 tensor, got {getattr(table, 'dtype', type(table))}")
    table = table.detach()
    if dtype == "float32":
        return table.contiguous(), None
    if dtype == "bfloat16":
        return table.to(torch.bfloat16).contiguous(), None
    lo = table.min(dim=1).values
    hi = table.max(dim=1).values
    scale = (hi - lo) / 255.0
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    codes = torch.round((table - lo[:, None]) / safe[:, None]).clamp(0, 255) - 128
    bias = lo + 128.0 * scale
    return codes.to(torch.int8).contiguous(), torch.stack([scale, bias], dim=1).contiguous()


def dequantize_rows(rows: torch.Tensor, scale_bias: torch.Tensor | None) -> torch.Tensor:
    """The float32 (N, D) table the stored `rows` (and `scale_bias` for int8) stand for."""
    if rows.dtype == torch.int8:
        return rows.to(torch.float32) * scale_bias[:, :1] + scale_bias[:, 1:]
    return rows.to(torch.float32)


def table_bytes(rows: torch.Tensor, scale_bias: torch.Tensor | None) -> int:
    """Bytes an inference table takes (rows plus the per-row scale and bias)."""
    extra = 0 if scale_bias is None else scale_bias.numel() * scale_bias.element_size()
    return rows.numel() * rows.element_size() + extra
