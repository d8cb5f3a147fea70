"""Inference tables as ops: the catalog top-k and the pooled lookup over int8 / bfloat16 tables.

A table is stored as ``rows`` (N, D) int8 with ``scale_bias`` (N, 2) float32 (row value = scale * code + bias),
or ``rows`` (N, D) bfloat16 with ``scale_bias=None`` (see recengine.ops.table_formats, which also
quantizes). Both ops compute in float32 from the rows dequantized on the fly, never writing a float32 table:

    scores, ids = quantized_catalog_topk(Q, rows, scale_bias, k, bias=b, exclude_offsets=o, exclude_ids=x)
    pooled = quantized_embedding_bag(rows, scale_bias, table_offsets, ids, offsets, pooling="mean")

``quantized_catalog_topk`` is ``catalog_topk`` (recengine.ops.policy) over the dequantized table: top-k of
Q . E[a] + bias[a] per row, descending, ties by the lower id, each row's excluded items (CSR
``exclude_offsets`` (B+1,) int64, ``exclude_ids``) never returned. ``quantized_embedding_bag`` is
``embedding_bag`` (recengine.ops.embedding_bag: ids local to their table, offsets (T*B+1,) table-major) over
the dequantized stacked tables, forward only (inference tables are not trained). CPU -> recengine._C, CUDA ->
Triton (recengine.kernels.quantized_tables). Inputs are validated here, once.
"""

from __future__ import annotations

import torch
from torch import Tensor

from recengine._native import as_array, cpu_ops
from recengine.ops._checks import INDEX_DTYPES, check_choice, check_positive, check_same_device, check_tensor

__all__ = ["quantized_catalog_topk", "quantized_embedding_bag", "ROW_DTYPES"]

#: the dtypes of an inference table's rows
ROW_DTYPES = (torch.int8, torch.bfloat16)


def _check_rows(rows: Tensor, scale_bias: Tensor | None) -> tuple[Tensor, Tensor | None]:
    check_tensor("rows", rows, dtypes=ROW_DTYPES, ndim=2)
    if rows.dtype == torch.int8:
        if scale_bias is None:
            raise ValueError("scale_bias: required with int8 rows (per-row scale and bias, shape (N, 2))")
        check_tensor("scale_bias", scale_bias, dtypes=(torch.float32,), shape=(rows.shape[0], 2))
        scale_bias = scale_bias.contiguous()
    elif scale_bias is not None:
        raise ValueError("scale_bias: must be None with bfloat16 rows")
    return rows.contiguous(), scale_bias


def _check_exclusion(
    B: int, N: int, k: int, exclude_offsets: Tensor | None, exclude_ids: Tensor | None
) -> tuple[Tensor | None, Tensor | None]:
    if (exclude_offsets is None) != (exclude_ids is None):
        raise ValueError("exclude_offsets and exclude_ids: give both or neither")
    if exclude_offsets is None:
        return None, None
    check_tensor("exclude_offsets", exclude_offsets, dtypes=(torch.int64,), shape=(B + 1,))
    check_tensor("exclude_ids", exclude_ids, dtypes=INDEX_DTYPES, ndim=1)
    exclude_offsets = exclude_offsets.contiguous()
    exclude_ids = exclude_ids.contiguous().to(torch.int64)
    if torch.compiler.is_compiling():
        return exclude_offsets, exclude_ids
    if int(exclude_offsets[0]) != 0 or bool((exclude_offsets[1:] < exclude_offsets[:-1]).any()):
        raise ValueError("exclude_offsets: must start at 0 and never decrease")
    if int(exclude_offsets[-1]) != exclude_ids.numel():
        raise ValueError(
            f"exclude_offsets: last entry {int(exclude_offsets[-1])} != len(exclude_ids) {exclude_ids.numel()}"
        )
    if exclude_ids.numel():
        bad = (exclude_ids < 0) | (exclude_ids >= N)
        if bool(bad.any()):
            i = int(bad.nonzero()[0])
            raise IndexError(
                f"exclude_ids: id {int(exclude_ids[i])} at position {i} is out of range for a catalog of {N} items"
            )
        counts = exclude_offsets[1:] - exclude_offsets[:-1]
        row = torch.repeat_interleave(torch.arange(B, device=exclude_ids.device), counts)
        distinct = torch.unique(row * N + exclude_ids) // N
        allowed = N - torch.bincount(distinct, minlength=B)
        short = (allowed < k).nonzero().flatten()
        if short.numel():
            b = int(short[0])
            raise ValueError(f"k: {k} exceeds the {int(allowed[b])} non-excluded items of row {b}")
    return exclude_offsets, exclude_ids


def _row_array(rows: Tensor):
    # bfloat16 has no NumPy dtype: the kernel reads the same bits as int16
    return as_array(rows.view(torch.int16) if rows.dtype == torch.bfloat16 else rows, "rows")


def _format(rows: Tensor) -> str:
    return "int8" if rows.dtype == torch.int8 else "bfloat16"


# ------------------------------------------------------------------------------------------- top-k
@torch.library.custom_op("recengine::quantized_catalog_topk", mutates_args=(), device_types="cpu")
def _qtopk_op(
    Q: Tensor,
    rows: Tensor,
    scale_bias: Tensor | None,
    k: int,
    bias: Tensor | None,
    exclude_offsets: Tensor | None,
    exclude_ids: Tensor | None,
) -> tuple[Tensor, Tensor]:
    B = Q.shape[0]
    vals = torch.full((B, k), float("-inf"))
    ids = torch.full((B, k), -1, dtype=torch.int64)
    count = torch.zeros(B, dtype=torch.int64)
    opt = [
        None if t is None else as_array(t, name)
        for name, t in (
            ("scale_bias", scale_bias),
            ("bias", bias),
            ("exclude_offsets", exclude_offsets),
            ("exclude_ids", exclude_ids),
        )
    ]
    cpu_ops().qtable_topk(
        _format(rows),
        as_array(Q, "Q"),
        _row_array(rows),
        *opt,
        as_array(vals, "vals"),
        as_array(ids, "ids"),
        as_array(count, "count"),
    )
    if bool((count < k).any()):
        raise ValueError("quantized_catalog_topk: fewer than k items scored")
    return vals, ids


@_qtopk_op.register_kernel("cuda")
def _qtopk_cuda(Q, rows, scale_bias, k, bias, exclude_offsets, exclude_ids):
    from recengine.kernels import quantized_tables as kernels

    return kernels.catalog_topk(Q, rows, scale_bias, k, bias, exclude_offsets, exclude_ids)


@_qtopk_op.register_fake
def _qtopk_fake(Q, rows, scale_bias, k, bias, exclude_offsets, exclude_ids):
    return Q.new_empty(Q.shape[0], k), Q.new_empty(Q.shape[0], k, dtype=torch.int64)


def quantized_catalog_topk(
    Q: Tensor,
    rows: Tensor,
    scale_bias: Tensor | None,
    k: int,
    *,
    bias: Tensor | None = None,
    exclude_offsets: Tensor | None = None,
    exclude_ids: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """(scores (B, k) float32, ids (B, k) int64): the k best items of each state Q (B, D) float32 over the
    inference table (`rows`, `scale_bias`), descending, ties by the lower id, excluded items never returned.

    Raises TypeError/ValueError naming the argument for a wrong dtype, shape or device, IndexError for an
    excluded id outside the catalog, ValueError when k exceeds a row's non-excluded items."""
    check_tensor("Q", Q, dtypes=(torch.float32,), ndim=2)
    rows, scale_bias = _check_rows(rows, scale_bias)
    B, N = Q.shape[0], rows.shape[0]
    if Q.shape[1] != rows.shape[1]:
        raise ValueError(f"Q and rows: embedding dims differ, Q {tuple(Q.shape)} vs rows {tuple(rows.shape)}")
    if N == 0:
        raise ValueError("rows: the catalog is empty (N = 0)")
    check_positive("k", k, integer=True)
    if k > N:
        raise ValueError(f"k: {k} exceeds the catalog size {N}")
    if bias is not None:
        check_tensor("bias", bias, dtypes=(torch.float32,), shape=(N,))
        bias = bias.contiguous()
    exclude_offsets, exclude_ids = _check_exclusion(B, N, k, exclude_offsets, exclude_ids)
    check_same_device(
        Q=Q, rows=rows, scale_bias=scale_bias, bias=bias, exclude_offsets=exclude_offsets, exclude_ids=exclude_ids
    )
    if not torch.compiler.is_compiling() and Q.numel() and not bool(torch.isfinite(Q).all()):
        raise ValueError("Q: holds NaN or infinite values")
    return torch.ops.recengine.quantized_catalog_topk(
        Q.contiguous(), rows, scale_bias, k, bias, exclude_offsets, exclude_ids
    )


# ----------------------------------------------------------------------------------- pooled lookup
@torch.library.custom_op("recengine::quantized_embedding_bag", mutates_args=(), device_types="cpu")
def _qbag_op(
    rows: Tensor, scale_bias: Tensor | None, table_offsets: Tensor, ids: Tensor, offsets: Tensor, pooling: str
) -> Tensor:
    T = table_offsets.numel() - 1
    B = (offsets.numel() - 1) // T
    out = torch.empty(B, T * rows.shape[1])
    ids64 = ids.to(torch.int64).contiguous()
    cpu_ops().qtable_embedding_bag(
        _format(rows),
        _row_array(rows),
        None if scale_bias is None else as_array(scale_bias, "scale_bias"),
        as_array(table_offsets, "table_offsets"),
        as_array(ids64, "ids"),
        as_array(offsets, "offsets"),
        pooling == "mean",
        as_array(out, "out"),
    )
    return out


@_qbag_op.register_kernel("cuda")
def _qbag_cuda(rows, scale_bias, table_offsets, ids, offsets, pooling):
    from recengine.kernels import quantized_tables as kernels

    return kernels.embedding_bag(rows, scale_bias, table_offsets, ids, offsets, pooling == "mean")


@_qbag_op.register_fake
def _qbag_fake(rows, scale_bias, table_offsets, ids, offsets, pooling):
    T = table_offsets.shape[0] - 1
    return rows.new_empty((offsets.shape[0] - 1) // T, T * rows.shape[1], dtype=torch.float32)


def quantized_embedding_bag(
    rows: Tensor, scale_bias: Tensor | None, table_offsets: Tensor, ids: Tensor, offsets: Tensor, pooling: str = "sum"
) -> Tensor:
    """Pooled (B, T*D) float32 over the stacked inference tables (`rows`, `scale_bias`): table t owns rows
    table_offsets[t]..table_offsets[t+1]-1; the bag of sample b in table t is ids[offsets[t*B+b]:
    offsets[t*B+b+1]] (ids local to the table); an empty bag pools to zeros. An id outside its table raises
    IndexError naming the table and the id."""
    rows, scale_bias = _check_rows(rows, scale_bias)
    check_choice("pooling", pooling, ("sum", "mean"))
    check_tensor("table_offsets", table_offsets, dtypes=(torch.int64,), ndim=1)
    check_tensor("ids", ids, dtypes=INDEX_DTYPES, ndim=1)
    check_tensor("offsets", offsets, dtypes=(torch.int64,), ndim=1)
    check_same_device(rows=rows, scale_bias=scale_bias, table_offsets=table_offsets, ids=ids, offsets=offsets)
    T = table_offsets.numel() - 1
    if (
        T < 1
        or int(table_offsets[0]) != 0
        or int(table_offsets[-1]) != rows.shape[0]
        or bool((table_offsets[1:] < table_offsets[:-1]).any())
    ):
        raise ValueError(f"table_offsets: expected T+1 non-decreasing entries from 0 to {rows.shape[0]}")
    if (offsets.numel() - 1) % T or offsets.numel() < 1:
        raise ValueError(f"offsets: expected T*B + 1 entries for T = {T} tables, got {offsets.numel()}")
    if int(offsets[0]) != 0 or int(offsets[-1]) != ids.numel() or bool((offsets[1:] < offsets[:-1]).any()):
        raise ValueError("offsets: must start at 0, never decrease and end at len(ids)")
    B = (offsets.numel() - 1) // T
    if ids.numel():
        lengths = offsets[1:] - offsets[:-1]
        table = torch.repeat_interleave(torch.arange(T, device=ids.device).repeat_interleave(B), lengths)
        size = (table_offsets[1:] - table_offsets[:-1])[table]
        bad = (ids < 0) | (ids >= size)
        if bool(bad.any()):
            i = int(bad.nonzero()[0])
            raise IndexError(
                f"ids: id {int(ids[i])} at position {i} is out of range for table {int(table[i])} "
                f"of {int(size[i])} rows"
            )
    return torch.ops.recengine.quantized_embedding_bag(
        rows, scale_bias, table_offsets.contiguous(), ids.contiguous(), offsets.contiguous(), pooling
    )
