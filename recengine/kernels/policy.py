"""Triton kernels of the catalog softmax-policy ops (CUDA; on the CPU under TRITON_INTERPRET=1).

One job, the family's Triton kernels (the catalog sweep in its top-k, sample, logsumexp and cross-entropy
forms): long because each kernel and its launcher sit together.

Each program takes BLOCK_B rows of Q and walks one split of the catalog BLOCK_N items at a time:
it computes the logits tile (tl.dot at about float32 accuracy, see CONFIG), masks the
rows' excluded items, and folds the tile into per-row state held in registers: an online logsumexp
and/or a running top-k (k rounds of "take the best, ties to the lower id" over the tile and the kept
entries, done only when some tile entry beats a row's k-th). Splitting the catalog over the second
grid axis keeps the GPU busy for small B; the host merges the splits' partial results (a few KiB).
The backward of the cross-entropy recomputes each logits tile once, from the forward's saved logsumexp
(`_ce_bwd_kernel`): a program owns one split of the catalog and walks every row block over it, so the
tile's gradient feeds dQ (summed per split in registers, the splits' partials added on the host in a fixed
order) and dE / dbias (the split's own rows, read-modify-written by that program alone) in the same pass:
no atomics, deterministic, and no B x N matrix. When only dQ or only dE / dbias is asked for, the
single-output kernels `_ce_dq_kernel` / `_ce_de_kernel` do less work.

The launchers take already-validated tensors (recengine/ops/policy.py validates).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from recengine.kernels.catalog_scan import block_d, exclusion_args, merge_topk, num_splits, topk_merge

#: launch shapes (rows per program, items per tile, warps) of the scan and of the two backward kernels,
#: and the precision of tl.dot: "tf32x3" splits each float32 operand into three TF32 products on the tensor
#: cores, for about float32's accuracy at a multiple of the speed of "ieee" (plain float32 FMAs). Chosen by
#: benchmarks/gpu_tune.py on an H200; its accuracy and speed are in benchmarks/RESULTS.md.
CONFIG = {"scan": (64, 64, 4), "dq": (64, 64, 4), "de": (64, 64, 4), "ce_bwd": (64, 64, 4), "precision": "tf32x3"}

#: the one-pass backward's dQ partial sums (one (B, D) float32 slab per catalog split) may take at most this much
#: extra memory; fewer splits when B * D is large
CE_BWD_PARTIALS_BYTES = 48 << 20


@triton.jit
def _mix32(x):
    # x is uint32: products wrap mod 2^32 and shifts are logical, as in C++ and the reference
    x = x ^ (x >> 16)
    x = x * tl.full([], 0x7FEB352D, tl.uint32)
    x = x ^ (x >> 15)
    x = x * tl.full([], 0x846CA68B, tl.uint32)
    x = x ^ (x >> 16)
    return x


@triton.jit
def _logits_tile(
    Q,
    E,
    bias,
    ex_off,
    ex_ids,
    rows,
    cols,
    row_ok,
    inv_temp,
    N,
    D,
    max_cnt,
    HAS_BIAS: tl.constexpr,
    HAS_EX: tl.constexpr,
    BLOCK_D: tl.constexpr,
    PREC: tl.constexpr,
):
    """(BLOCK_B, BLOCK_N) logits of rows x cols; out-of-range and excluded entries are -inf."""
    dims = tl.arange(0, BLOCK_D)
    col_ok = cols < N
    q = tl.load(Q + rows[:, None] * D + dims[None, :], mask=row_ok[:, None] & (dims[None, :] < D), other=0.0)
    e = tl.load(E + cols[:, None] * D + dims[None, :], mask=col_ok[:, None] & (dims[None, :] < D), other=0.0)
    x = tl.dot(q, tl.trans(e), input_precision=PREC)
    if HAS_BIAS:
        x = x + tl.load(bias + cols, mask=col_ok, other=0.0)[None, :]
    x = x * inv_temp
    valid = row_ok[:, None] & col_ok[None, :]
    if HAS_EX:
        start = tl.load(ex_off + rows, mask=row_ok, other=0)
        count = tl.load(ex_off + rows + 1, mask=row_ok, other=0) - start
        for t in range(0, max_cnt):
            ex = tl.load(ex_ids + start + t, mask=t < count, other=-1)
            valid = valid & (cols[None, :] != ex[:, None])
    return tl.where(valid, x, float("-inf")), valid


@triton.jit
def _gumbel(skey_ptr, rows, cols):
    sk = tl.load(skey_ptr).to(tl.uint32)  # from memory: a scalar argument could be specialised (== 1)
    rk = _mix32(_mix32(rows.to(tl.uint32)) ^ sk)
    h = _mix32(_mix32(cols.to(tl.uint32) ^ sk)[None, :] ^ rk[:, None])
    u = ((h >> 9).to(tl.float32) + 0.5) * (1.0 / 8388608.0)
    return -tl.log(-tl.log(u))


@triton.jit
def _lse_update(x, m, s):
    m_new = tl.maximum(m, tl.max(x, axis=1))
    safe = tl.where(m_new == float("-inf"), 0.0, m_new)
    s = s * tl.exp(m - safe) + tl.sum(tl.exp(x - safe[:, None]), axis=1)
    return m_new, s


@triton.jit
def _scan_kernel(
    Q,
    E,
    bias,
    ex_off,
    ex_ids,
    out_v,
    out_i,
    out_a,
    out_m,
    out_s,
    B,
    N,
    D,
    k,
    inv_temp,
    skey_ptr,
    max_cnt,
    items_per_split,
    HAS_BIAS: tl.constexpr,
    HAS_EX: tl.constexpr,
    TOPK: tl.constexpr,
    SAMPLE: tl.constexpr,
    LSE: tl.constexpr,
    K: tl.constexpr,
    BLOCK_B: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
    PREC: tl.constexpr,
):
    """One (row block, catalog split): running top-k of the logits (TOPK), of logits + Gumbel noise
    with the logits carried along (SAMPLE), and/or the online logsumexp (LSE). Partial results go to
    out_*[split, row, ...]."""
    pid_b = tl.program_id(0)
    split = tl.program_id(1)
    rows = pid_b * BLOCK_B + tl.arange(0, BLOCK_B)
    row_ok = rows < B
    lo = split * items_per_split
    hi = tl.minimum(lo + items_per_split, N)
    m = tl.full((BLOCK_B,), float("-inf"), tl.float32)
    s = tl.zeros((BLOCK_B,), tl.float32)
    vals = tl.full((BLOCK_B, K), float("-inf"), tl.float32)
    ids = tl.full((BLOCK_B, K), 2147483647, tl.int32)
    aux = tl.zeros((BLOCK_B, K), tl.float32)
    kcol = tl.arange(0, K)[None, :]
    for j0 in range(lo, hi, BLOCK_N):
        cols = j0 + tl.arange(0, BLOCK_N)
        x, valid = _logits_tile(
            Q, E, bias, ex_off, ex_ids, rows, cols, row_ok, inv_temp, hi, D, max_cnt, HAS_BIAS, HAS_EX, BLOCK_D, PREC
        )
        if LSE:
            m, s = _lse_update(x, m, s)
        if TOPK or SAMPLE:
            if SAMPLE:
                cand = tl.where(valid, x + _gumbel(skey_ptr, rows, cols), float("-inf"))
            else:
                cand = x
            kth = tl.max(tl.where(kcol == k - 1, vals, float("-inf")), axis=1)
            # later items have higher ids, so only a strictly larger value can displace the k-th
            if tl.max(tl.sum((cand > kth[:, None]).to(tl.int32), axis=1), axis=0) > 0:
                cand_ids = tl.zeros((BLOCK_B, BLOCK_N), tl.int32) + cols[None, :]
                vals, ids, aux = topk_merge(vals, ids, aux, cand, cand_ids, x, k, K)
    base = split * B * K + rows[:, None] * K + kcol
    if TOPK or SAMPLE:
        tl.store(out_v + base, vals, mask=row_ok[:, None])
        tl.store(out_i + base, ids, mask=row_ok[:, None])
        tl.store(out_a + base, aux, mask=row_ok[:, None])
    if LSE:
        tl.store(out_m + split * B + rows, m, mask=row_ok)
        tl.store(out_s + split * B + rows, s, mask=row_ok)


@triton.jit
def _grad_tile(
    Q,
    E,
    bias,
    ex_off,
    ex_ids,
    target,
    lse,
    p_scale,
    t_scale,
    rows,
    cols,
    row_ok,
    inv_temp,
    B,
    N,
    D,
    max_cnt,
    HAS_BIAS: tl.constexpr,
    HAS_EX: tl.constexpr,
    BLOCK_D: tl.constexpr,
    PREC: tl.constexpr,
):
    """d loss / d raw scores on a tile: softmax * p_scale - onehot(target) * t_scale (0 where excluded)."""
    x, valid = _logits_tile(
        Q, E, bias, ex_off, ex_ids, rows, cols, row_ok, inv_temp, N, D, max_cnt, HAS_BIAS, HAS_EX, BLOCK_D, PREC
    )
    row_lse = tl.load(lse + rows, mask=row_ok, other=0.0)
    ps = tl.load(p_scale + rows, mask=row_ok, other=0.0)
    ts = tl.load(t_scale + rows, mask=row_ok, other=0.0)
    tg = tl.load(target + rows, mask=row_ok, other=-1)
    g = tl.exp(x - row_lse[:, None]) * ps[:, None]
    g = g - tl.where(cols[None, :] == tg[:, None], ts[:, None], 0.0)
    return tl.where(valid, g, 0.0)


@triton.jit
def _ce_dq_kernel(
    Q,
    E,
    bias,
    ex_off,
    ex_ids,
    target,
    lse,
    p_scale,
    t_scale,
    dQ,
    B,
    N,
    D,
    inv_temp,
    max_cnt,
    items_per_split,
    HAS_BIAS: tl.constexpr,
    HAS_EX: tl.constexpr,
    BLOCK_B: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
    PREC: tl.constexpr,
):
    """dQ of one (row block, catalog split) into dQ[split]: the splits keep a small B from leaving SMs idle."""
    split = tl.program_id(1)
    rows = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    row_ok = rows < B
    dims = tl.arange(0, BLOCK_D)
    acc = tl.zeros((BLOCK_B, BLOCK_D), tl.float32)
    lo = split * items_per_split
    for j0 in range(lo, tl.minimum(lo + items_per_split, N), BLOCK_N):
        cols = j0 + tl.arange(0, BLOCK_N)
        g = _grad_tile(
            Q,
            E,
            bias,
            ex_off,
            ex_ids,
            target,
            lse,
            p_scale,
            t_scale,
            rows,
            cols,
            row_ok,
            inv_temp,
            B,
            N,
            D,
            max_cnt,
            HAS_BIAS,
            HAS_EX,
            BLOCK_D,
            PREC,
        )
        e = tl.load(E + cols[:, None] * D + dims[None, :], mask=(cols[:, None] < N) & (dims[None, :] < D), other=0.0)
        acc += tl.dot(g, e, input_precision=PREC)
    tl.store(dQ + (split * B + rows[:, None]) * D + dims[None, :], acc, mask=row_ok[:, None] & (dims[None, :] < D))


@triton.jit
def _ce_de_kernel(
    Q,
    E,
    bias,
    ex_off,
    ex_ids,
    target,
    lse,
    p_scale,
    t_scale,
    dE,
    dbias,
    B,
    N,
    D,
    inv_temp,
    max_cnt,
    HAS_BIAS: tl.constexpr,
    HAS_EX: tl.constexpr,
    NEED_E: tl.constexpr,
    NEED_BIAS: tl.constexpr,
    BLOCK_B: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
    PREC: tl.constexpr,
):
    cols = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    col_ok = cols < N
    dims = tl.arange(0, BLOCK_D)
    acc = tl.zeros((BLOCK_N, BLOCK_D), tl.float32)
    acc_b = tl.zeros((BLOCK_N,), tl.float32)
    for r0 in range(0, B, BLOCK_B):
        rows = r0 + tl.arange(0, BLOCK_B)
        row_ok = rows < B
        g = _grad_tile(
            Q,
            E,
            bias,
            ex_off,
            ex_ids,
            target,
            lse,
            p_scale,
            t_scale,
            rows,
            cols,
            row_ok,
            inv_temp,
            B,
            N,
            D,
            max_cnt,
            HAS_BIAS,
            HAS_EX,
            BLOCK_D,
            PREC,
        )
        if NEED_E:
            q = tl.load(Q + rows[:, None] * D + dims[None, :], mask=row_ok[:, None] & (dims[None, :] < D), other=0.0)
            acc += tl.dot(tl.trans(g), q, input_precision=PREC)
        if NEED_BIAS:
            acc_b += tl.sum(g, axis=0)
    if NEED_E:
        tl.store(dE + cols[:, None] * D + dims[None, :], acc, mask=col_ok[:, None] & (dims[None, :] < D))
    if NEED_BIAS:
        tl.store(dbias + cols, acc_b, mask=col_ok)


@triton.jit
def _ce_bwd_kernel(
    Q,
    E,
    bias,
    ex_off,
    ex_ids,
    target,
    lse,
    p_scale,
    t_scale,
    dQ,
    dE,
    dbias,
    B,
    N,
    D,
    inv_temp,
    max_cnt,
    items_per_split,
    HAS_BIAS: tl.constexpr,
    HAS_EX: tl.constexpr,
    NEED_E: tl.constexpr,
    NEED_BIAS: tl.constexpr,
    BLOCK_B: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
    PREC: tl.constexpr,
):
    """One catalog split, every row block: each logits tile is computed once and gives both its dQ part
    (into dQ[split], summed in registers over the split) and its dE / dbias part (dE and dbias zero-filled
    by the host; only this program touches the split's rows)."""
    split = tl.program_id(0)
    lo = split * items_per_split
    hi = tl.minimum(lo + items_per_split, N)
    dims = tl.arange(0, BLOCK_D)
    dim_ok = dims[None, :] < D
    for r0 in range(0, B, BLOCK_B):
        rows = r0 + tl.arange(0, BLOCK_B)
        row_ok = rows < B
        q = tl.load(Q + rows[:, None] * D + dims[None, :], mask=row_ok[:, None] & dim_ok, other=0.0)
        acc_q = tl.zeros((BLOCK_B, BLOCK_D), tl.float32)
        for j0 in range(lo, hi, BLOCK_N):
            cols = j0 + tl.arange(0, BLOCK_N)
            col_ok = cols < hi
            g = _grad_tile(
                Q,
                E,
                bias,
                ex_off,
                ex_ids,
                target,
                lse,
                p_scale,
                t_scale,
                rows,
                cols,
                row_ok,
                inv_temp,
                B,
                hi,
                D,
                max_cnt,
                HAS_BIAS,
                HAS_EX,
                BLOCK_D,
                PREC,
            )
            e_ptrs = cols[:, None] * D + dims[None, :]
            e_mask = col_ok[:, None] & dim_ok
            e = tl.load(E + e_ptrs, mask=e_mask, other=0.0)
            acc_q += tl.dot(g, e, input_precision=PREC)
            if NEED_E:
                de = tl.load(dE + e_ptrs, mask=e_mask, other=0.0)
                tl.store(dE + e_ptrs, de + tl.dot(tl.trans(g), q, input_precision=PREC), mask=e_mask)
            if NEED_BIAS:
                db = tl.load(dbias + cols, mask=col_ok, other=0.0)
                tl.store(dbias + cols, db + tl.sum(g, axis=0), mask=col_ok)
            # the next row block reads these rows back, possibly in other threads: make the writes visible
            tl.debug_barrier()
        tl.store(dQ + (split * B + rows[:, None]) * D + dims[None, :], acc_q, mask=row_ok[:, None] & dim_ok)


# ------------------------------------------------------------------------------------------ launchers
def _scan(Q, E, k, bias, inv_temp, exclude_offsets, exclude_ids, *, topk, sample, lse, skey=0):
    B, D = Q.shape
    N = E.shape[0]
    dev = Q.device
    block_b, block_n, warps = CONFIG["scan"]
    splits = num_splits(B, N, block_b, block_n)
    items = triton.cdiv(triton.cdiv(N, splits), block_n) * block_n
    splits = triton.cdiv(N, items)
    K = max(2, triton.next_power_of_2(max(k, 1)))
    out_v = torch.full((splits, B, K), float("-inf"), device=dev)
    out_i = torch.zeros((splits, B, K), dtype=torch.int32, device=dev)
    out_a = torch.zeros((splits, B, K), device=dev)
    out_m = torch.empty((splits, B), device=dev)
    out_s = torch.empty((splits, B), device=dev)
    ex_off, ex_ids, max_cnt, has_ex = exclusion_args(exclude_offsets, exclude_ids, dev)
    b = bias if bias is not None else out_m
    grid = (triton.cdiv(B, block_b), splits)
    _scan_kernel[grid](
        Q,
        E,
        b,
        ex_off,
        ex_ids,
        out_v,
        out_i,
        out_a,
        out_m,
        out_s,
        B,
        N,
        D,
        k,
        float(inv_temp),
        torch.full((1,), int(skey), dtype=torch.int64, device=dev),  # a fill, not a host copy: capturable
        max_cnt,
        items,
        HAS_BIAS=bias is not None,
        HAS_EX=has_ex,
        TOPK=topk,
        SAMPLE=sample,
        LSE=lse,
        K=K,
        BLOCK_B=block_b,
        BLOCK_N=block_n,
        BLOCK_D=block_d(D),
        PREC=CONFIG["precision"],
        num_warps=warps,
    )
    return out_v, out_i, out_a, out_m, out_s


def _merge_lse(out_m, out_s):
    M = out_m.max(0).values
    safe = torch.where(M == float("-inf"), torch.zeros_like(M), M)
    total = (out_s * torch.exp(out_m - safe)).sum(0)
    return torch.where(M == float("-inf"), M, safe + torch.log(total))


def catalog_topk(Q, E, k, bias, inv_temp, exclude_offsets, exclude_ids):
    """(scores (B, k), ids (B, k) int64); see recengine.ops.catalog_topk."""
    out_v, out_i, out_a, _, _ = _scan(
        Q, E, k, bias, inv_temp, exclude_offsets, exclude_ids, topk=True, sample=False, lse=False
    )
    v, i, _ = merge_topk(out_v, out_i, out_a, k)
    return v, i


def catalog_sample(Q, E, k, skey, bias, inv_temp, exclude_offsets, exclude_ids):
    """(ids (B, k) int64, log_probs (B, k)) by Gumbel-top-k with the hashed noise of seed key `skey`."""
    out_v, out_i, out_a, out_m, out_s = _scan(
        Q, E, k, bias, inv_temp, exclude_offsets, exclude_ids, topk=False, sample=True, lse=True, skey=skey
    )
    _, i, x = merge_topk(out_v, out_i, out_a, k)
    return i, x - _merge_lse(out_m, out_s).unsqueeze(1)


def catalog_logsumexp(Q, E, bias, inv_temp, exclude_offsets, exclude_ids):
    """(B,) logsumexp of the logits over the non-excluded items."""
    _, _, _, out_m, out_s = _scan(
        Q, E, 1, bias, inv_temp, exclude_offsets, exclude_ids, topk=False, sample=False, lse=True
    )
    return _merge_lse(out_m, out_s)


def catalog_cross_entropy_backward(
    Q, E, target, bias, lse, p_scale, t_scale, inv_temp, exclude_offsets, exclude_ids, need_q, need_e, need_bias
):
    """(dQ, dE, dbias) of sum_b p_scale[b]*T*lse[b] - t_scale[b]*T*logit[b, target[b]] (empty if not needed)."""
    B, D = Q.shape
    N = E.shape[0]
    dev = Q.device
    ex_off, ex_ids, max_cnt, has_ex = exclusion_args(exclude_offsets, exclude_ids, dev)
    b = bias if bias is not None else lse
    dQ = Q.new_empty(0)
    dE = torch.empty_like(E) if need_e else E.new_empty(0)
    dbias = torch.empty(N, device=dev) if need_bias else Q.new_empty(0)
    args = (Q, E, b, ex_off, ex_ids, target, lse, p_scale, t_scale)
    prec = CONFIG["precision"]
    if need_q and (need_e or need_bias):
        return _ce_backward_one_pass(args, B, N, D, inv_temp, max_cnt, bias is not None, has_ex, need_e, need_bias)
    if need_q:
        block_b, block_n, warps = CONFIG["dq"]
        splits = num_splits(B, N, block_b, block_n)
        items = triton.cdiv(triton.cdiv(N, splits), block_n) * block_n
        splits = triton.cdiv(N, items)
        parts = torch.empty((splits, B, D), device=dev)
        _ce_dq_kernel[(triton.cdiv(B, block_b), splits)](
            *args,
            parts,
            B,
            N,
            D,
            float(inv_temp),
            max_cnt,
            items,
            HAS_BIAS=bias is not None,
            HAS_EX=has_ex,
            BLOCK_B=block_b,
            BLOCK_N=block_n,
            BLOCK_D=block_d(D),
            PREC=prec,
            num_warps=warps,
        )
        dQ = parts.sum(0)  # a fixed order: deterministic
    if need_e or need_bias:
        block_b, block_n, warps = CONFIG["de"]
        _ce_de_kernel[(triton.cdiv(N, block_n),)](
            *args,
            dE if need_e else lse,
            dbias if need_bias else lse,
            B,
            N,
            D,
            float(inv_temp),
            max_cnt,
            HAS_BIAS=bias is not None,
            HAS_EX=has_ex,
            NEED_E=need_e,
            NEED_BIAS=need_bias,
            BLOCK_B=block_b,
            BLOCK_N=block_n,
            BLOCK_D=block_d(D),
            PREC=prec,
            num_warps=warps,
        )
    return dQ, dE, dbias


def _ce_backward_one_pass(args, B, N, D, inv_temp, max_cnt, has_bias, has_ex, need_e, need_bias):
    """(dQ, dE, dbias) in one recomputation of the logits tiles (`_ce_bwd_kernel`)."""
    Q, E = args[0], args[1]
    dev = Q.device
    block_b, block_n, warps = CONFIG["ce_bwd"]
    # splits of at least two tiles each (fewer partial slabs), within the partials' memory budget
    by_memory = max(1, CE_BWD_PARTIALS_BYTES // max(1, B * D * 4))
    splits = int(max(1, min(triton.cdiv(N, 2 * block_n), by_memory)))
    items = triton.cdiv(triton.cdiv(N, splits), block_n) * block_n
    splits = triton.cdiv(N, items)
    parts = torch.empty((splits, B, D), device=dev)
    dE = torch.zeros_like(E) if need_e else E.new_empty(0)
    dbias = torch.zeros(N, device=dev) if need_bias else Q.new_empty(0)
    _ce_bwd_kernel[(splits,)](
        *args,
        parts,
        dE if need_e else parts,
        dbias if need_bias else parts,
        B,
        N,
        D,
        float(inv_temp),
        max_cnt,
        items,
        HAS_BIAS=has_bias,
        HAS_EX=has_ex,
        NEED_E=need_e,
        NEED_BIAS=need_bias,
        BLOCK_B=block_b,
        BLOCK_N=block_n,
        BLOCK_D=block_d(D),
        PREC=CONFIG["precision"],
        num_warps=warps,
    )
    return parts.sum(0), dE, dbias
