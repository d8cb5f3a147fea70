"""Triton kernels of the table-batched embedding bag (CUDA; CPU tensors under TRITON_INTERPRET=1).

One job, the family's Triton kernels (forward, backward, the fused optimizer updates): long because each
kernel and its launcher sit together.

Each launcher is named after the torch.library op it implements on CUDA (`torch.ops.recengine.<name>`)
and takes tensors already validated by recengine.ops.embedding_bag (contiguous, right dtypes, one
device). Ids outside their table are masked out (never read or written), so even an unvalidated call
stays in bounds.

- `embedding_bag`: one program per bag, loading BLOCK_N rows at a time; it also checks the ids and the
  layout and reports the first offenders, so the public op validates without extra passes or launches.
- `embedding_bag_psw_backward`: one program per bag, <grad_output row, weight row> per id.
- `embedding_bag_backward` and `embedding_bag_fused_update` share one kernel: torch sorts the global rows
  (stable) and finds the unique ones; then one program per unique row sums its occurrences' gradients
  (duplicates first) and writes the dense gradient row (kind 0) or updates the row and its optimizer
  state in place (1 SGD, 2 row-wise Adagrad, 3 Adam).
- `embedding_bag_fused_update_static`: the same update with a grid fixed by the batch's shape and the Adam
  bias corrections read on the device: no host sync, so a training step can be captured in a CUDA graph.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

DENSE_GRAD, SGD, ROWWISE_ADAGRAD, ADAM = 0, 1, 2, 3


def _blocks(dim: int) -> tuple[int, int]:
    block_d = triton.next_power_of_2(max(dim, 1))
    block_n = max(1, min(32, 4096 // block_d))
    return block_n, block_d


@triton.jit
def _forward_kernel(
    w_ptr,
    table_offsets_ptr,
    ids_ptr,
    offsets_ptr,
    psw_ptr,
    out_ptr,
    err_ptr,
    B,
    T,
    D,
    R,
    n_ids,
    HAS_PSW: tl.constexpr,
    MEAN: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    j = tl.program_id(0).to(tl.int64)
    t = j // B
    b = j % B
    base = tl.load(table_offsets_ptr + t)
    top = tl.load(table_offsets_ptr + t + 1)
    start = tl.load(offsets_ptr + j)
    end = tl.load(offsets_ptr + j + 1)
    # Whatever the inputs, nothing outside weights or ids is touched: a bag or table that breaks the layout is
    # skipped and reported (err[1] = its index, err[2] = the table), a bad id is masked out (err[0] = its
    # position); the host reads err once after the launch and raises.
    bag_bad = (
        (start < 0) | (end < start) | (end > n_ids) | ((j == 0) & (start != 0)) | ((j == B * T - 1) & (end != n_ids))
    )
    table_bad = (base < 0) | (top < base) | (top > R)
    if bag_bad:
        tl.atomic_min(err_ptr + 1, j)
    if table_bad:
        tl.atomic_min(err_ptr + 2, t)
    skip = bag_bad | table_bad
    end = tl.where(skip, start, end)
    rows_t = top - base
    d = tl.arange(0, BLOCK_D)
    dmask = d < D
    acc = tl.zeros([BLOCK_D], dtype=tl.float32)
    for k0 in range(start, end, BLOCK_N):
        k = k0 + tl.arange(0, BLOCK_N)
        kmask = k < end
        idx = tl.load(ids_ptr + k, mask=kmask, other=0).to(tl.int64)
        ok = kmask & (idx >= 0) & (idx < rows_t)
        tl.atomic_min(err_ptr + tl.zeros_like(k), k, mask=kmask & ~ok)
        rows = base + tl.where(ok, idx, 0)
        vals = tl.load(w_ptr + rows[:, None] * D + d[None, :], mask=ok[:, None] & dmask[None, :], other=0.0)
        if HAS_PSW:
            scale = tl.load(psw_ptr + k, mask=ok, other=0.0)
            vals = vals * scale[:, None]
        acc += tl.sum(vals, axis=0)
    if MEAN:
        n = tl.maximum(end - start, 1).to(tl.float32)
        acc = acc / n
    tl.store(out_ptr + (b * T + t) * D + d, acc, mask=dmask)


#: no error in that slot of embedding_bag's error report
NO_ERROR = 2**63 - 1


def embedding_bag(
    weights: torch.Tensor,
    table_offsets: torch.Tensor,
    ids: torch.Tensor,
    offsets: torch.Tensor,
    per_sample_weights: torch.Tensor | None,
    mean: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T*D) pooled rows, and the error report (3,) int64: the first bad id's position, the first bag
    whose offsets break the layout, the first table whose table_offsets do (NO_ERROR where none)."""
    num_tables = table_offsets.numel() - 1
    batch = (offsets.numel() - 1) // num_tables
    dim = weights.shape[1]
    out = torch.empty(batch, num_tables * dim, dtype=weights.dtype, device=weights.device)
    err = torch.full((3,), NO_ERROR, dtype=torch.int64, device=weights.device)
    if out.numel() == 0:
        return out, err
    block_n, block_d = _blocks(dim)
    psw = per_sample_weights if per_sample_weights is not None else weights
    _forward_kernel[(num_tables * batch,)](
        weights,
        table_offsets,
        ids,
        offsets,
        psw,
        out,
        err,
        batch,
        num_tables,
        dim,
        weights.shape[0],
        ids.numel(),
        HAS_PSW=per_sample_weights is not None,
        MEAN=mean,
        BLOCK_N=block_n,
        BLOCK_D=block_d,
    )
    return out, err


@triton.jit
def _psw_kernel(
    go_ptr,
    w_ptr,
    table_offsets_ptr,
    ids_ptr,
    offsets_ptr,
    grad_psw_ptr,
    B,
    T,
    D,
    MEAN: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    j = tl.program_id(0).to(tl.int64)
    t = j // B
    b = j % B
    base = tl.load(table_offsets_ptr + t)
    rows_t = tl.load(table_offsets_ptr + t + 1) - base
    start = tl.load(offsets_ptr + j)
    end = tl.load(offsets_ptr + j + 1)
    d = tl.arange(0, BLOCK_D)
    dmask = d < D
    g = tl.load(go_ptr + (b * T + t) * D + d, mask=dmask, other=0.0)
    inv = 1.0
    if MEAN:
        inv = 1.0 / tl.maximum(end - start, 1).to(tl.float32)
    for k0 in range(start, end, BLOCK_N):
        k = k0 + tl.arange(0, BLOCK_N)
        kmask = k < end
        idx = tl.load(ids_ptr + k, mask=kmask, other=0).to(tl.int64)
        ok = kmask & (idx >= 0) & (idx < rows_t)
        rows = base + tl.where(ok, idx, 0)
        vals = tl.load(w_ptr + rows[:, None] * D + d[None, :], mask=ok[:, None] & dmask[None, :], other=0.0)
        dot = tl.sum(vals * g[None, :], axis=1) * inv
        tl.store(grad_psw_ptr + k, dot, mask=kmask)


def embedding_bag_psw_backward(
    grad_output: torch.Tensor,
    weights: torch.Tensor,
    table_offsets: torch.Tensor,
    ids: torch.Tensor,
    offsets: torch.Tensor,
    mean: bool,
) -> torch.Tensor:
    """(N,) gradient w.r.t. the per-sample weights."""
    num_tables = table_offsets.numel() - 1
    batch = (offsets.numel() - 1) // num_tables
    dim = weights.shape[1]
    grad_psw = torch.zeros(ids.numel(), dtype=weights.dtype, device=weights.device)
    if ids.numel() == 0 or batch == 0:
        return grad_psw
    block_n, block_d = _blocks(dim)
    _psw_kernel[(num_tables * batch,)](
        grad_output,
        weights,
        table_offsets,
        ids,
        offsets,
        grad_psw,
        batch,
        num_tables,
        dim,
        MEAN=mean,
        BLOCK_N=block_n,
        BLOCK_D=block_d,
    )
    return grad_psw


@triton.jit
def _update_kernel(
    go_ptr,
    target_ptr,
    s1_ptr,
    s2_ptr,
    uniq_ptr,
    seg_ptr,
    order_ptr,
    bag_ptr,
    offsets_ptr,
    psw_ptr,
    B,
    T,
    D,
    lr,
    eps,
    beta1,
    beta2,
    bias_correction1,
    bias_correction2,
    first_ptr,
    bc_ptr,
    KIND: tl.constexpr,
    HAS_PSW: tl.constexpr,
    MEAN: tl.constexpr,
    STATIC: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    u = tl.program_id(0).to(tl.int64)
    d = tl.arange(0, BLOCK_D)
    if STATIC:
        # one program per sorted position (a grid fixed by the batch's shape): only the first position of
        # each row's run (first_ptr) works, over [u, seg_ptr[u]); the bias corrections come from bc_ptr
        live = tl.load(first_ptr + u) != 0
        row = tl.where(live, tl.load(uniq_ptr + u), 0)
        start = u
        end = tl.where(live, tl.load(seg_ptr + u), u)
        dmask = d < D
        smask = dmask & ((tl.zeros([BLOCK_D], dtype=tl.int32) + live.to(tl.int32)) != 0)
        bias_correction1 = tl.load(bc_ptr)
        bias_correction2 = tl.load(bc_ptr + 1)
    else:
        live = u >= 0
        row = tl.load(uniq_ptr + u)
        start = tl.load(seg_ptr + u)
        end = tl.load(seg_ptr + u + 1)
        dmask = d < D
        smask = dmask
    g = tl.zeros([BLOCK_D], dtype=tl.float32)
    for i0 in range(start, end, BLOCK_N):
        i = i0 + tl.arange(0, BLOCK_N)
        imask = i < end
        k = tl.load(order_ptr + i, mask=imask, other=0)
        j = tl.load(bag_ptr + k, mask=imask, other=0)
        scale = tl.where(imask, 1.0, 0.0)
        if HAS_PSW:
            scale = scale * tl.load(psw_ptr + k, mask=imask, other=0.0)
        if MEAN:
            n = tl.load(offsets_ptr + j + 1, mask=imask, other=1) - tl.load(offsets_ptr + j, mask=imask, other=0)
            scale = scale / tl.maximum(n, 1).to(tl.float32)
        go_row = (j % B) * T + j // B
        go = tl.load(go_ptr + go_row[:, None] * D + d[None, :], mask=imask[:, None] & dmask[None, :], other=0.0)
        g += tl.sum(go * scale[:, None], axis=0)
    w_ptrs = target_ptr + row * D + d
    if KIND == 0:
        tl.store(w_ptrs, g, mask=smask)
    elif KIND == 1:
        w = tl.load(w_ptrs, mask=dmask, other=0.0)
        tl.store(w_ptrs, w - lr * g, mask=smask)
    elif KIND == 2:
        s = tl.load(s1_ptr + row) + tl.sum(g * g, axis=0) / D
        tl.store(s1_ptr + row, s, mask=live)
        w = tl.load(w_ptrs, mask=dmask, other=0.0)
        tl.store(w_ptrs, w - (lr / (tl.sqrt(s) + eps)) * g, mask=smask)
    else:
        m = tl.load(s1_ptr + row * D + d, mask=dmask, other=0.0)
        v = tl.load(s2_ptr + row * D + d, mask=dmask, other=0.0)
        m = beta1 * m + (1.0 - beta1) * g
        v = beta2 * v + (1.0 - beta2) * g * g
        tl.store(s1_ptr + row * D + d, m, mask=smask)
        tl.store(s2_ptr + row * D + d, v, mask=smask)
        w = tl.load(w_ptrs, mask=dmask, other=0.0)
        tl.store(w_ptrs, w - lr * (m / bias_correction1) / (tl.sqrt(v / bias_correction2) + eps), mask=smask)


def _sorted_rows(
    table_offsets: torch.Tensor, ids: torch.Tensor, offsets: torch.Tensor, batch: int, num_rows: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(bag, sorted_rows, order), each (N,): the bag of every id position, the ids' global rows sorted (stable, so
    a row's occurrences keep their order), and the position each sorted entry came from. An id outside its table
    gets the key `num_rows`, past every row: invalid ids sort to the end, where the update leaves them out."""
    num_tables = table_offsets.numel() - 1
    lengths = offsets[1:] - offsets[:-1]
    bag = torch.repeat_interleave(torch.arange(num_tables * batch, device=ids.device), lengths, output_size=ids.numel())
    table = bag // batch
    base = table_offsets[table]
    local = ids.long()
    valid = (local >= 0) & (local < table_offsets[table + 1] - base)
    rows = torch.where(valid, base + local, torch.full_like(local, num_rows))
    sorted_rows, order = torch.sort(rows, stable=True)
    return bag, sorted_rows, order


def _aggregate_update(
    grad_output: torch.Tensor,
    target: torch.Tensor,
    table_offsets: torch.Tensor,
    ids: torch.Tensor,
    offsets: torch.Tensor,
    per_sample_weights: torch.Tensor | None,
    mean: bool,
    kind: int,
    state1: torch.Tensor | None = None,
    state2: torch.Tensor | None = None,
    lr: float = 0.0,
    eps: float = 0.0,
    beta1: float = 0.0,
    beta2: float = 0.0,
    bias_correction1: float = 1.0,
    bias_correction2: float = 1.0,
) -> None:
    """Per unique row: the summed gradient written to `target` (kind 0, a zero-filled (R, D)) or the fused
    optimizer update of the rows of `target` (the weights) and `state1`/`state2`, in place.

    Ids outside their table are dropped (the op validated them before; this keeps the kernel in bounds).
    """
    num_tables = table_offsets.numel() - 1
    batch = (offsets.numel() - 1) // num_tables
    dim = target.shape[1]
    n = ids.numel()
    if n == 0 or batch == 0:
        return
    bag, sorted_rows, order = _sorted_rows(table_offsets, ids, offsets, batch, target.shape[0])
    uniq, counts = torch.unique_consecutive(sorted_rows, return_counts=True)
    seg = torch.zeros(uniq.numel() + 1, dtype=torch.int64, device=ids.device)
    torch.cumsum(counts, 0, out=seg[1:])
    num_unique = int((uniq < target.shape[0]).sum())
    if num_unique == 0:
        return
    block_n, block_d = _blocks(dim)
    dummy = target
    _update_kernel[(num_unique,)](
        grad_output,
        target,
        state1 if state1 is not None else dummy,
        state2 if state2 is not None else dummy,
        uniq,
        seg,
        order,
        bag,
        offsets,
        per_sample_weights if per_sample_weights is not None else dummy,
        batch,
        num_tables,
        dim,
        float(lr),
        float(eps),
        float(beta1),
        float(beta2),
        float(bias_correction1),
        float(bias_correction2),
        uniq,
        uniq,
        KIND=kind,
        HAS_PSW=per_sample_weights is not None,
        MEAN=mean,
        STATIC=False,
        BLOCK_N=block_n,
        BLOCK_D=block_d,
    )


def _update_static(
    grad_output: torch.Tensor,
    weights: torch.Tensor,
    table_offsets: torch.Tensor,
    ids: torch.Tensor,
    offsets: torch.Tensor,
    per_sample_weights: torch.Tensor | None,
    mean: bool,
    kind: int,
    state1: torch.Tensor | None,
    state2: torch.Tensor | None,
    lr: float,
    eps: float,
    beta1: float,
    beta2: float,
    bias_corrections: torch.Tensor,
) -> None:
    """`_aggregate_update` with shapes fixed by the batch alone: no host readback, no data-dependent grid,
    so it can be captured in a CUDA graph. One program per id position (only the first of each row's run
    works); the bias corrections (2,) float32 are read on the device."""
    num_tables = table_offsets.numel() - 1
    batch = (offsets.numel() - 1) // num_tables
    dim = weights.shape[1]
    n = ids.numel()
    if n == 0 or batch == 0:
        return
    num_rows = weights.shape[0]
    bag, sorted_rows, order = _sorted_rows(table_offsets, ids, offsets, batch, num_rows)
    position = torch.arange(n, device=ids.device)
    starts_run = torch.ones(n, dtype=torch.bool, device=ids.device)
    starts_run[1:] = sorted_rows[1:] != sorted_rows[:-1]
    # the end of the run starting at u is the next run's start (n after the last run)
    next_start = torch.where(starts_run, position, torch.full_like(position, n))
    next_start = torch.cat([next_start[1:], next_start.new_full((1,), n)])
    ends = torch.flip(torch.cummin(torch.flip(next_start, (0,)), 0).values, (0,))
    first = (starts_run & (sorted_rows < num_rows)).to(torch.int8)
    block_n, block_d = _blocks(dim)
    dummy = weights
    _update_kernel[(n,)](
        grad_output,
        weights,
        state1 if state1 is not None else dummy,
        state2 if state2 is not None else dummy,
        sorted_rows,
        ends,
        order,
        bag,
        offsets,
        per_sample_weights if per_sample_weights is not None else dummy,
        batch,
        num_tables,
        dim,
        float(lr),
        float(eps),
        float(beta1),
        float(beta2),
        1.0,
        1.0,
        first,
        bias_corrections,
        KIND=kind,
        HAS_PSW=per_sample_weights is not None,
        MEAN=mean,
        STATIC=True,
        BLOCK_N=block_n,
        BLOCK_D=block_d,
    )


def embedding_bag_fused_update_static(
    grad_output: torch.Tensor,
    weights: torch.Tensor,
    table_offsets: torch.Tensor,
    ids: torch.Tensor,
    offsets: torch.Tensor,
    per_sample_weights: torch.Tensor | None,
    mean: bool,
    optimizer_code: int,
    state1: torch.Tensor | None,
    state2: torch.Tensor | None,
    lr: float,
    eps: float,
    beta1: float,
    beta2: float,
    bias_corrections: torch.Tensor,
) -> None:
    """`embedding_bag_fused_update` with no host sync (capturable): the Adam bias corrections (2,) float32
    on the device."""
    _update_static(
        grad_output,
        weights,
        table_offsets,
        ids,
        offsets,
        per_sample_weights,
        mean,
        optimizer_code,
        state1,
        state2,
        lr,
        eps,
        beta1,
        beta2,
        bias_corrections,
    )


def embedding_bag_backward(
    grad_output: torch.Tensor,
    weights: torch.Tensor,
    table_offsets: torch.Tensor,
    ids: torch.Tensor,
    offsets: torch.Tensor,
    per_sample_weights: torch.Tensor | None,
    mean: bool,
) -> torch.Tensor:
    """The dense (R, D) gradient of the weights, each referenced row's gradient summed over the batch."""
    grad_weights = torch.zeros_like(weights, memory_format=torch.contiguous_format)
    _aggregate_update(grad_output, grad_weights, table_offsets, ids, offsets, per_sample_weights, mean, DENSE_GRAD)
    return grad_weights


def embedding_bag_fused_update(
    grad_output: torch.Tensor,
    weights: torch.Tensor,
    table_offsets: torch.Tensor,
    ids: torch.Tensor,
    offsets: torch.Tensor,
    per_sample_weights: torch.Tensor | None,
    mean: bool,
    optimizer_code: int,
    state1: torch.Tensor | None,
    state2: torch.Tensor | None,
    lr: float,
    eps: float,
    beta1: float,
    beta2: float,
    bias_correction1: float,
    bias_correction2: float,
) -> None:
    """The backward fused with the optimizer of code `optimizer_code`, in place on weights, state1, state2."""
    _aggregate_update(
        grad_output,
        weights,
        table_offsets,
        ids,
        offsets,
        per_sample_weights,
        mean,
        optimizer_code,
        state1,
        state2,
        lr,
        eps,
        beta1,
        beta2,
        bias_correction1,
        bias_correction2,
    )
