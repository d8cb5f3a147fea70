"""Triton kernels over inference tables (CUDA; on the CPU under TRITON_INTERPRET=1).

The catalog top-k over an int8 (codes + per-row scale and bias) or bfloat16 item table: each program takes
BLOCK_B user states and walks one split of the catalog BLOCK_N items at a time, loading the stored rows,
dequantizing them in registers (never writing a float32 table), scoring with tl.dot and folding the tile
into a running top-k, exactly as the float32 scan of recengine.kernels.policy does (its merge helpers are
reused). The pooled lookup gathers and dequantizes rows per bag.

The launchers take already-validated tensors (recengine/ops/quantized_tables.py validates).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from recengine.kernels.catalog_scan import block_d, exclusion_args, merge_topk, num_splits, topk_merge
from recengine.kernels.policy import CONFIG


@triton.jit
def _qscan_kernel(
    Q,
    rows,
    scale_bias,
    bias,
    ex_off,
    ex_ids,
    out_v,
    out_i,
    out_a,
    B,
    N,
    D,
    k,
    max_cnt,
    items_per_split,
    INT8: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    HAS_EX: tl.constexpr,
    K: tl.constexpr,
    BLOCK_B: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
    PREC: tl.constexpr,
):
    """One (row block, catalog split): running top-k of Q . dequant(rows) + bias into out_*[split, row]."""
    pid_b = tl.program_id(0)
    split = tl.program_id(1)
    brows = pid_b * BLOCK_B + tl.arange(0, BLOCK_B)
    row_ok = brows < B
    lo = split * items_per_split
    hi = tl.minimum(lo + items_per_split, N)
    dims = tl.arange(0, BLOCK_D)
    q = tl.load(Q + brows[:, None] * D + dims[None, :], mask=row_ok[:, None] & (dims[None, :] < D), other=0.0)
    vals = tl.full((BLOCK_B, K), float("-inf"), tl.float32)
    ids = tl.full((BLOCK_B, K), 2147483647, tl.int32)
    aux = tl.zeros((BLOCK_B, K), tl.float32)
    kcol = tl.arange(0, K)[None, :]
    for j0 in range(lo, hi, BLOCK_N):
        cols = j0 + tl.arange(0, BLOCK_N)
        col_ok = cols < hi
        emask = col_ok[:, None] & (dims[None, :] < D)
        e = tl.load(rows + cols[:, None] * D + dims[None, :], mask=emask, other=0).to(tl.float32)
        if INT8:
            scale = tl.load(scale_bias + cols * 2, mask=col_ok, other=0.0)
            shift = tl.load(scale_bias + cols * 2 + 1, mask=col_ok, other=0.0)
            e = tl.where(emask, e * scale[:, None] + shift[:, None], 0.0)
        x = tl.dot(q, tl.trans(e), input_precision=PREC)
        if HAS_BIAS:
            x = x + tl.load(bias + cols, mask=col_ok, other=0.0)[None, :]
        valid = row_ok[:, None] & col_ok[None, :]
        if HAS_EX:
            start = tl.load(ex_off + brows, mask=row_ok, other=0)
            count = tl.load(ex_off + brows + 1, mask=row_ok, other=0) - start
            for t in range(0, max_cnt):
                ex = tl.load(ex_ids + start + t, mask=t < count, other=-1)
                valid = valid & (cols[None, :] != ex[:, None])
        x = tl.where(valid, x, float("-inf"))
        kth = tl.max(tl.where(kcol == k - 1, vals, float("-inf")), axis=1)
        if tl.max(tl.sum((x > kth[:, None]).to(tl.int32), axis=1), axis=0) > 0:
            cand_ids = tl.zeros((BLOCK_B, BLOCK_N), tl.int32) + cols[None, :]
            vals, ids, aux = topk_merge(vals, ids, aux, x, cand_ids, x, k, K)
    base = split * B * K + brows[:, None] * K + kcol
    tl.store(out_v + base, vals, mask=row_ok[:, None])
    tl.store(out_i + base, ids, mask=row_ok[:, None])
    tl.store(out_a + base, aux, mask=row_ok[:, None])


@triton.jit
def _qbag_kernel(
    rows,
    scale_bias,
    table_offsets,
    ids,
    offsets,
    out,
    B,
    D,
    T,
    INT8: tl.constexpr,
    MEAN: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    """One bag j = t*B + b: the (mean or sum) of its dequantized rows into out[b, t*D:(t+1)*D]."""
    j = tl.program_id(0)
    t = j // B
    b = j % B
    dims = tl.arange(0, BLOCK_D)
    dmask = dims < D
    start = tl.load(offsets + j)
    end = tl.load(offsets + j + 1)
    base = tl.load(table_offsets + t)
    acc = tl.zeros((BLOCK_D,), tl.float32)
    for p in range(start, end):
        r = base + tl.load(ids + p)
        v = tl.load(rows + r * D + dims, mask=dmask, other=0).to(tl.float32)
        if INT8:
            v = v * tl.load(scale_bias + r * 2) + tl.load(scale_bias + r * 2 + 1)
        acc += tl.where(dmask, v, 0.0)
    if MEAN:
        acc = acc / tl.maximum(end - start, 1).to(tl.float32)
    tl.store(out + b * T * D + t * D + dims, acc, mask=dmask)


def catalog_topk(Q, rows, scale_bias, k, bias, exclude_offsets, exclude_ids):
    """(scores (B, k), ids (B, k) int64); see recengine.ops.quantized_catalog_topk."""
    B, D = Q.shape
    N = rows.shape[0]
    dev = Q.device
    block_b, block_n, warps = CONFIG["scan"]
    splits = num_splits(B, N, block_b, block_n)
    items = triton.cdiv(triton.cdiv(N, splits), block_n) * block_n
    splits = triton.cdiv(N, items)
    K = max(2, triton.next_power_of_2(max(k, 1)))
    out_v = torch.full((splits, B, K), float("-inf"), device=dev)
    out_i = torch.zeros((splits, B, K), dtype=torch.int32, device=dev)
    out_a = torch.zeros((splits, B, K), device=dev)
    ex_off, ex_ids, max_cnt, has_ex = exclusion_args(exclude_offsets, exclude_ids, dev)
    int8 = rows.dtype == torch.int8
    sb = scale_bias if int8 else out_a
    b = bias if bias is not None else out_a
    grid = (triton.cdiv(B, block_b), splits)
    _qscan_kernel[grid](
        Q,
        rows,
        sb,
        b,
        ex_off,
        ex_ids,
        out_v,
        out_i,
        out_a,
        B,
        N,
        D,
        k,
        max_cnt,
        items,
        INT8=int8,
        HAS_BIAS=bias is not None,
        HAS_EX=has_ex,
        K=K,
        BLOCK_B=block_b,
        BLOCK_N=block_n,
        BLOCK_D=block_d(D),
        PREC=CONFIG["precision"],
        num_warps=warps,
    )
    v, i, _ = merge_topk(out_v, out_i, out_a, k)
    return v, i


def embedding_bag(rows, scale_bias, table_offsets, ids, offsets, mean):
    """Pooled (B, T*D) float32 over the dequantized stacked tables; see recengine.ops.quantized_embedding_bag."""
    T = table_offsets.numel() - 1
    B = (offsets.numel() - 1) // T
    D = rows.shape[1]
    out = torch.empty((B, T * D), device=rows.device)
    if B == 0:
        return out
    int8 = rows.dtype == torch.int8
    sb = scale_bias if int8 else out
    _qbag_kernel[(T * B,)](
        rows, sb, table_offsets, ids.to(torch.int64), offsets, out, B, D, T, INT8=int8, MEAN=mean, BLOCK_D=block_d(D)
    )
    return out
