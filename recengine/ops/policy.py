"""Catalog softmax-policy scoring: top-k, Gumbel-top-k sampling, logsumexp and cross-entropy in one pass.

One job, the family's public ops (top-k, sample, logsumexp, cross-entropy): long because each op carries its
registration, fake implementation, autograd and the one validation helper they share.

For user states Q (B, D) and item embeddings E (N, D), float32, the logits are

    logits[b, a] = (Q[b] . E[a] + bias[a]) / temperature

and pi(a | s_b) = softmax over a of logits[b]. An optional exclusion list per user (CSR:
exclude_offsets (B+1,) int64, exclude_ids int32/int64 item ids; row b excludes
exclude_ids[exclude_offsets[b]:exclude_offsets[b+1]], duplicates allowed) removes items from that
user's row: they never score, are never drawn and carry no probability. Ids returned are int64.

No op materialises the B x N logits: the catalog is walked in tiles (CPU: one C++ OpenMP sweep, each
thread computing L2-sized tiles with the process's BLAS and folding them into per-row state at once;
CUDA: Triton). Peak extra memory is O(B*k + threads * tile), plus dE itself for the backward. Both
backends take Q and bias as given and inv_temp = 1 / temperature, applied per logit in the kernel.
On CPUs with AVX512-BF16, catalog_topk of 48+ rows first scores in bfloat16 (twice the multiply-adds per
instruction) with a proven error bound per score, and rescores in float32 only the items that bound
cannot rule out: the result is still the float32 top-k (csrc/policy/topk_bf16.cpp). Below 48 rows the threads
split the catalog instead of the batch (a batch of one still uses every thread and reads the table once), and up
to 8 rows take AVX-512 dot products straight from the table, where a BLAS GEMM would run far below the memory
bound (csrc/policy/catalog_blocks.h; the inference tables' top-k runs the same sweep).
The plain-PyTorch truth is recengine.reference.policy.
"""

from __future__ import annotations

import torch
from torch import Tensor

from recengine._native import as_array, cpu_ops
from recengine.ops._checks import (
    INDEX_DTYPES,
    check_choice,
    check_int,
    check_number,
    check_positive,
    check_same_device,
    check_tensor,
)
from recengine.ops._triton import triton_kernels
from recengine.ops.counter_hash import seed_key

__all__ = ["catalog_topk", "catalog_sample", "catalog_logsumexp", "catalog_cross_entropy", "REDUCTIONS"]

#: the reductions catalog_cross_entropy offers
REDUCTIONS = ("mean", "sum", "none")


# ------------------------------------------------------------------------------------- validation
def _check_finite(**tensors: Tensor | None) -> None:
    # one cheap reduction per tensor, read back in one host sync; the exact check only for a sum that is not
    # finite (it may just overflow)
    given = {name: t.detach() for name, t in tensors.items() if t is not None and t.numel()}
    if not given or bool(torch.isfinite(torch.stack([t.sum() for t in given.values()])).all()):
        return
    for name, t in given.items():
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name}: holds NaN or infinite values")


def _validate(
    Q: Tensor,
    E: Tensor,
    bias: Tensor | None,
    temperature: float,
    exclude_offsets: Tensor | None,
    exclude_ids: Tensor | None,
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None, Tensor | None]:
    """Check what the shapes, dtypes and devices say (no data is read, so this traces under torch.compile);
    returns (Q, E, bias, exclude_offsets, exclude_ids int64), contiguous. The checks that read the values
    run inside the ops (`_check_values`)."""
    check_tensor("Q", Q, dtypes=(torch.float32,), ndim=2)
    check_tensor("E", E, dtypes=(torch.float32,), ndim=2)
    if Q.shape[1] != E.shape[1]:
        raise ValueError(f"Q and E: embedding dims differ, Q {tuple(Q.shape)} vs E {tuple(E.shape)}")
    B, N = Q.shape[0], E.shape[0]
    if N == 0:
        raise ValueError("E: the catalog is empty (N = 0)")
    if bias is not None:
        check_tensor("bias", bias, dtypes=(torch.float32,), shape=(N,))
    check_number("temperature", temperature, minimum=0.0, exclusive=True)
    if (exclude_offsets is None) != (exclude_ids is None):
        raise ValueError("exclude_offsets and exclude_ids: give both or neither")
    if exclude_offsets is not None:
        check_tensor("exclude_offsets", exclude_offsets, dtypes=(torch.int64,), shape=(B + 1,))
        check_tensor("exclude_ids", exclude_ids, dtypes=INDEX_DTYPES, ndim=1)
    check_same_device(Q=Q, E=E, bias=bias, exclude_offsets=exclude_offsets, exclude_ids=exclude_ids)
    Q, E = Q.contiguous(), E.contiguous()
    bias = None if bias is None else bias.contiguous()
    if exclude_offsets is not None:
        exclude_offsets = exclude_offsets.contiguous()
        exclude_ids = exclude_ids.contiguous().to(torch.int64)
    return Q, E, bias, exclude_offsets, exclude_ids


def _check_values(
    Q: Tensor, E: Tensor, bias: Tensor | None, exclude_offsets: Tensor | None, exclude_ids: Tensor | None
) -> None:
    """The checks that read the data, run by every op before its kernel (so also in a compiled or exported
    graph): finite Q, E and bias, a well-formed exclusion list with every id inside the catalog."""
    _check_finite(Q=Q, E=E, bias=bias)
    if exclude_offsets is None:
        return
    N = E.shape[0]
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


def _excluded_rows(B: int, exclude_offsets: Tensor, exclude_ids: Tensor) -> Tensor:
    counts = exclude_offsets[1:] - exclude_offsets[:-1]
    return torch.repeat_interleave(torch.arange(B, device=exclude_ids.device), counts)


def _check_k(k: int, N: int) -> None:
    check_positive("k", k, integer=True)
    if k > N:
        raise ValueError(f"k: {k} exceeds the catalog size {N}")


def _check_k_per_row(k: int, N: int, B: int, exclude_offsets: Tensor | None, exclude_ids: Tensor | None) -> None:
    """Inside the ops: every row keeps at least k items once its exclusions are taken out."""
    if exclude_offsets is not None and exclude_ids.numel():
        rows = _excluded_rows(B, exclude_offsets, exclude_ids)
        distinct = torch.unique(rows * N + exclude_ids) // N  # duplicates in a row count once
        allowed = N - torch.bincount(distinct, minlength=B)
        short = (allowed < k).nonzero().flatten()
        if short.numel():
            b = int(short[0])
            raise ValueError(f"k: {k} exceeds the {int(allowed[b])} non-excluded items of row {b}")


def _check_target_values(target: Tensor, N: int, exclude_offsets: Tensor | None, exclude_ids: Tensor | None) -> None:
    """Inside the ops: every target inside the catalog and not excluded from its row."""
    bad = (target < 0) | (target >= N)
    if bool(bad.any()):
        b = int(bad.nonzero()[0])
        raise IndexError(f"target: id {int(target[b])} of row {b} is out of range for a catalog of {N} items")
    if exclude_offsets is not None and exclude_ids.numel():
        rows = _excluded_rows(target.shape[0], exclude_offsets, exclude_ids)
        hit = exclude_ids == target[rows]
        if bool(hit.any()):
            b = int(rows[hit.nonzero()[0]])
            raise ValueError(f"target: item {int(target[b])} of row {b} is in that row's exclusion list")


def _check_finite_output(op: str, what: str, t: Tensor, *, allow_neg_inf: bool = False) -> None:
    """Inside the ops: the kernel's result holds no NaN or infinity (the logits overflowed otherwise)."""
    bad = torch.isnan(t) | torch.isposinf(t) if allow_neg_inf else ~torch.isfinite(t)
    if bool(bad.any()):
        raise ValueError(f"{op}: the logits overflowed (non-finite {what})")


# ------------------------------------------------------------------------------------ CPU driver
# The C++ sweeps take the same arguments as the Triton launchers: raw Q and bias, and inv_temp = 1 / temperature,
# which both apply per logit, (Q . E[a] + bias[a]) * inv_temp.
def _arr(t):
    return None if t is None else as_array(t, "tensor")


def cpu_topk(Q, E, k, bias, inv_temp, exclude_offsets, exclude_ids):
    """(values (B, k), ids (B, k) int64, count (B,)) of the C++ top-k sweep over validated CPU tensors, before
    any output check: the CPU kernel behind catalog_topk and catalog_argmax (recengine.ops.sync_free).
    `count` is how many items each row's heap took (fewer than k: the slots left are -inf with id -1)."""
    _C = cpu_ops()
    B = Q.shape[0]
    vals = torch.full((B, k), float("-inf"))
    ids = torch.full((B, k), -1, dtype=torch.int64)
    count = torch.zeros(B, dtype=torch.int64)
    a_vals, a_ids, a_count = _arr(vals), _arr(ids), _arr(count)
    a_off, a_ex = _arr(exclude_offsets), _arr(exclude_ids)

    _C.policy_topk(_arr(Q), _arr(E), _arr(bias), inv_temp, a_off, a_ex, a_vals, a_ids, a_count)
    _C.policy_heaps_finish(a_vals, a_ids, None, a_count)
    return vals, ids, count


def _cpu_lse(Q, E, bias, inv_temp, exclude_offsets, exclude_ids, target=None):
    """Per-row logsumexp and, with target, the target's logit."""
    _C = cpu_ops()
    B = Q.shape[0]
    m = torch.full((B,), float("-inf"))
    s = torch.zeros(B)
    x_t = torch.zeros(B) if target is not None else None
    a_m, a_s, a_t, a_xt = _arr(m), _arr(s), _arr(target), _arr(x_t)
    a_off, a_ex = _arr(exclude_offsets), _arr(exclude_ids)

    _C.policy_lse(_arr(Q), _arr(E), _arr(bias), inv_temp, a_off, a_ex, a_m, a_s, a_t, a_xt)
    lse = torch.empty(B)
    _C.policy_lse_finish(a_m, a_s, _arr(lse))
    return lse, x_t


def _cpu_sample(Q, E, k, skey, bias, inv_temp, exclude_offsets, exclude_ids):
    _C = cpu_ops()
    B = Q.shape[0]
    keys = torch.full((B, k), float("-inf"))
    ids = torch.full((B, k), -1, dtype=torch.int64)
    xs = torch.zeros(B, k)
    count = torch.zeros(B, dtype=torch.int64)
    m = torch.full((B,), float("-inf"))
    s = torch.zeros(B)
    arrs = [_arr(t) for t in (keys, ids, xs, count, m, s)]
    a_off, a_ex = _arr(exclude_offsets), _arr(exclude_ids)

    _C.policy_sample(_arr(Q), _arr(E), _arr(bias), inv_temp, a_off, a_ex, skey, *arrs)
    _C.policy_heaps_finish(arrs[0], arrs[1], arrs[2], arrs[3])
    lse = torch.empty(B)
    _C.policy_lse_finish(arrs[4], arrs[5], _arr(lse))
    return ids, xs - lse.unsqueeze(1), lse, count


def _cpu_ce_backward(
    Q, E, target, bias, lse, p_scale, t_scale, inv_temp, exclude_offsets, exclude_ids, need_q, need_e, need_bias
):
    _C = cpu_ops()
    N = E.shape[0]
    dQ = torch.zeros_like(Q) if need_q else Q.new_empty(0)
    dE = torch.zeros_like(E) if need_e else E.new_empty(0)
    dbias = torch.zeros(N) if need_bias else Q.new_empty(0)
    a_off, a_ex = _arr(exclude_offsets), _arr(exclude_ids)
    _C.policy_ce_backward(
        _arr(Q),
        _arr(E),
        _arr(bias),
        inv_temp,
        a_off,
        a_ex,
        _arr(lse),
        _arr(target),
        _arr(p_scale),
        _arr(t_scale),
        _arr(dQ) if need_q else None,
        _arr(dE) if need_e else None,
        _arr(dbias) if need_bias else None,
    )
    return dQ, dE, dbias


# ---------------------------------------------------------------------------- torch.library ops
# Each op checks the values of its inputs (and the finiteness of its result) itself, on every backend, so the
# checks hold in a compiled or exported graph too; the public functions check only what shapes and dtypes say.
@torch.library.custom_op("recengine::catalog_topk", mutates_args=(), device_types="cpu")
def _topk_op(
    Q: torch.Tensor,
    E: torch.Tensor,
    k: int,
    bias: torch.Tensor | None,
    temperature: float,
    exclude_offsets: torch.Tensor | None,
    exclude_ids: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    _check_values(Q, E, bias, exclude_offsets, exclude_ids)
    _check_k_per_row(k, E.shape[0], Q.shape[0], exclude_offsets, exclude_ids)
    vals, ids, count = cpu_topk(Q, E, k, bias, 1.0 / temperature, exclude_offsets, exclude_ids)
    if bool((count < k).any()):
        raise ValueError("catalog_topk: fewer than k items scored (logits overflowed to -inf?)")
    _check_finite_output("catalog_topk", "scores", vals)
    return vals, ids


@_topk_op.register_kernel("cuda")
def _topk_cuda(Q, E, k, bias, temperature, exclude_offsets, exclude_ids):
    kernels = triton_kernels("policy")
    _check_values(Q, E, bias, exclude_offsets, exclude_ids)
    _check_k_per_row(k, E.shape[0], Q.shape[0], exclude_offsets, exclude_ids)
    vals, ids = kernels.catalog_topk(Q, E, k, bias, 1.0 / temperature, exclude_offsets, exclude_ids)
    _check_finite_output("catalog_topk", "scores", vals)
    return vals, ids


@_topk_op.register_fake
def _topk_fake(Q, E, k, bias, temperature, exclude_offsets, exclude_ids):
    return Q.new_empty(Q.shape[0], k), Q.new_empty(Q.shape[0], k, dtype=torch.int64)


@torch.library.custom_op("recengine::catalog_sample", mutates_args=(), device_types="cpu")
def _sample_op(
    Q: torch.Tensor,
    E: torch.Tensor,
    k: int,
    seed_key: int,
    bias: torch.Tensor | None,
    temperature: float,
    exclude_offsets: torch.Tensor | None,
    exclude_ids: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """seed_key: the 32-bit key recengine.ops.counter_hash.seed_key(seed) of the caller's seed."""
    _check_values(Q, E, bias, exclude_offsets, exclude_ids)
    _check_k_per_row(k, E.shape[0], Q.shape[0], exclude_offsets, exclude_ids)
    ids, log_probs, lse, count = _cpu_sample(Q, E, k, seed_key, bias, 1.0 / temperature, exclude_offsets, exclude_ids)
    if bool((count < k).any()):
        raise ValueError("catalog_sample: the logits overflowed (non-finite logsumexp)")
    _check_finite_output("catalog_sample", "log-probabilities", log_probs)
    return ids, log_probs


@_sample_op.register_kernel("cuda")
def _sample_cuda(Q, E, k, seed_key, bias, temperature, exclude_offsets, exclude_ids):
    kernels = triton_kernels("policy")
    _check_values(Q, E, bias, exclude_offsets, exclude_ids)
    _check_k_per_row(k, E.shape[0], Q.shape[0], exclude_offsets, exclude_ids)
    ids, log_probs = kernels.catalog_sample(Q, E, k, seed_key, bias, 1.0 / temperature, exclude_offsets, exclude_ids)
    _check_finite_output("catalog_sample", "log-probabilities", log_probs)
    return ids, log_probs


@_sample_op.register_fake
def _sample_fake(Q, E, k, seed_key, bias, temperature, exclude_offsets, exclude_ids):
    return Q.new_empty(Q.shape[0], k, dtype=torch.int64), Q.new_empty(Q.shape[0], k)


@torch.library.custom_op("recengine::catalog_logsumexp", mutates_args=(), device_types="cpu")
def _lse_op(
    Q: torch.Tensor,
    E: torch.Tensor,
    bias: torch.Tensor | None,
    temperature: float,
    exclude_offsets: torch.Tensor | None,
    exclude_ids: torch.Tensor | None,
) -> torch.Tensor:
    _check_values(Q, E, bias, exclude_offsets, exclude_ids)
    lse = _cpu_lse(Q, E, bias, 1.0 / temperature, exclude_offsets, exclude_ids)[0]
    _check_finite_output("catalog_logsumexp", "logsumexp", lse, allow_neg_inf=True)
    return lse


@_lse_op.register_kernel("cuda")
def _lse_cuda(Q, E, bias, temperature, exclude_offsets, exclude_ids):
    kernels = triton_kernels("policy")
    _check_values(Q, E, bias, exclude_offsets, exclude_ids)
    lse = kernels.catalog_logsumexp(Q, E, bias, 1.0 / temperature, exclude_offsets, exclude_ids)
    _check_finite_output("catalog_logsumexp", "logsumexp", lse, allow_neg_inf=True)
    return lse


@_lse_op.register_fake
def _lse_fake(Q, E, bias, temperature, exclude_offsets, exclude_ids):
    return Q.new_empty(Q.shape[0])


@torch.library.custom_op("recengine::catalog_cross_entropy_rows", mutates_args=(), device_types="cpu")
def _ce_rows_op(
    Q: torch.Tensor,
    E: torch.Tensor,
    target: torch.Tensor,
    bias: torch.Tensor | None,
    temperature: float,
    exclude_offsets: torch.Tensor | None,
    exclude_ids: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss per row = lse - logit[target], lse per row); target int64."""
    _check_values(Q, E, bias, exclude_offsets, exclude_ids)
    _check_target_values(target, E.shape[0], exclude_offsets, exclude_ids)
    lse, x_t = _cpu_lse(Q, E, bias, 1.0 / temperature, exclude_offsets, exclude_ids, target)
    _check_finite_output("catalog_cross_entropy", "logsumexp", lse)
    return lse - x_t, lse


@_ce_rows_op.register_kernel("cuda")
def _ce_rows_cuda(Q, E, target, bias, temperature, exclude_offsets, exclude_ids):
    kernels = triton_kernels("policy")
    _check_values(Q, E, bias, exclude_offsets, exclude_ids)
    _check_target_values(target, E.shape[0], exclude_offsets, exclude_ids)
    lse = kernels.catalog_logsumexp(Q, E, bias, 1.0 / temperature, exclude_offsets, exclude_ids)
    _check_finite_output("catalog_cross_entropy", "logsumexp", lse)
    x_t = (Q * E[target]).sum(1)
    if bias is not None:
        x_t = x_t + bias[target]
    return lse - x_t / temperature, lse


@_ce_rows_op.register_fake
def _ce_rows_fake(Q, E, target, bias, temperature, exclude_offsets, exclude_ids):
    return Q.new_empty(Q.shape[0]), Q.new_empty(Q.shape[0])


@torch.library.custom_op("recengine::catalog_cross_entropy_backward", mutates_args=(), device_types="cpu")
def _ce_bwd_op(
    Q: torch.Tensor,
    E: torch.Tensor,
    target: torch.Tensor,
    bias: torch.Tensor | None,
    lse: torch.Tensor,
    p_scale: torch.Tensor,
    t_scale: torch.Tensor,
    temperature: float,
    exclude_offsets: torch.Tensor | None,
    exclude_ids: torch.Tensor | None,
    need_q: bool,
    need_e: bool,
    need_bias: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients w.r.t. (Q, E, bias) of sum_b p_scale[b] * T * lse[b] - t_scale[b] * T * logit[b, target[b]]
    (scales already divided by T); a gradient not asked for comes back empty."""
    return _cpu_ce_backward(
        Q,
        E,
        target,
        bias,
        lse,
        p_scale,
        t_scale,
        1.0 / temperature,
        exclude_offsets,
        exclude_ids,
        need_q,
        need_e,
        need_bias,
    )


@_ce_bwd_op.register_kernel("cuda")
def _ce_bwd_cuda(
    Q, E, target, bias, lse, p_scale, t_scale, temperature, exclude_offsets, exclude_ids, need_q, need_e, need_bias
):
    kernels = triton_kernels("policy")
    return kernels.catalog_cross_entropy_backward(
        Q,
        E,
        target,
        bias,
        lse,
        p_scale,
        t_scale,
        1.0 / temperature,
        exclude_offsets,
        exclude_ids,
        need_q,
        need_e,
        need_bias,
    )


@_ce_bwd_op.register_fake
def _ce_bwd_fake(
    Q, E, target, bias, lse, p_scale, t_scale, temperature, exclude_offsets, exclude_ids, need_q, need_e, need_bias
):
    return (
        Q.new_empty(Q.shape if need_q else (0,)),
        E.new_empty(E.shape if need_e else (0,)),
        Q.new_empty((E.shape[0],) if need_bias else (0,)),
    )


def _ce_setup_context(ctx, inputs, output):
    Q, E, target, bias, temperature, exclude_offsets, exclude_ids = inputs
    ctx.save_for_backward(Q, E, target, bias, output[1], exclude_offsets, exclude_ids)
    ctx.temperature = temperature
    ctx.has_bias = bias is not None


def _ce_backward(ctx, grad_loss, grad_lse):
    Q, E, target, bias, lse, exclude_offsets, exclude_ids = ctx.saved_tensors
    need = ctx.needs_input_grad
    need_q, need_e, need_bias = bool(need[0]), bool(need[1]), bool(need[3]) and ctx.has_bias
    if not (need_q or need_e or need_bias):
        return None, None, None, None, None, None, None
    inv_t = 1.0 / ctx.temperature
    g_loss = torch.zeros_like(lse) if grad_loss is None else grad_loss
    g_lse = torch.zeros_like(lse) if grad_lse is None else grad_lse
    p_scale = ((g_loss + g_lse) * inv_t).contiguous()
    t_scale = (g_loss * inv_t).contiguous()
    dQ, dE, dbias = torch.ops.recengine.catalog_cross_entropy_backward(
        Q,
        E,
        target,
        bias,
        lse,
        p_scale,
        t_scale,
        ctx.temperature,
        exclude_offsets,
        exclude_ids,
        need_q,
        need_e,
        need_bias,
    )
    return (dQ if need_q else None, dE if need_e else None, None, dbias if need_bias else None, None, None, None)


torch.library.register_autograd("recengine::catalog_cross_entropy_rows", _ce_backward, setup_context=_ce_setup_context)


# ------------------------------------------------------------------------------------ public API
def catalog_topk(
    Q: Tensor,
    E: Tensor,
    k: int,
    *,
    bias: Tensor | None = None,
    temperature: float = 1.0,
    exclude_offsets: Tensor | None = None,
    exclude_ids: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """The k best items per user: (scores (B, k) float32, ids (B, k) int64).

    scores are the logits (Q @ E.T + bias) / temperature, sorted descending; equal scores are ordered
    by the lower item id. Excluded items never appear. Raises ValueError when k exceeds the number of
    non-excluded items of any row.
    """
    Q, E, bias, exclude_offsets, exclude_ids = _validate(Q, E, bias, temperature, exclude_offsets, exclude_ids)
    _check_k(k, E.shape[0])
    return torch.ops.recengine.catalog_topk(Q, E, k, bias, float(temperature), exclude_offsets, exclude_ids)


def catalog_sample(
    Q: Tensor,
    E: Tensor,
    k: int,
    seed: int,
    *,
    bias: Tensor | None = None,
    temperature: float = 1.0,
    exclude_offsets: Tensor | None = None,
    exclude_ids: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """k distinct items per user drawn from the softmax policy without replacement (Gumbel-top-k):
    (ids (B, k) int64, log_probs (B, k) float32), where log_probs[b, i] = log pi(ids[b, i] | s_b) under
    the full softmax over the non-excluded catalog. Items come in the order of their perturbed keys
    (the first column alone is a draw from pi).

    The randomness is counter-based: the noise for (seed, row, item) is a hash of the three
    (recengine.reference.policy.hash_uniform), so the same seed gives the same draw on every backend.
    """
    Q, E, bias, exclude_offsets, exclude_ids = _validate(Q, E, bias, temperature, exclude_offsets, exclude_ids)
    _check_k(k, E.shape[0])
    check_int("seed", seed)
    return torch.ops.recengine.catalog_sample(
        Q, E, k, seed_key(seed), bias, float(temperature), exclude_offsets, exclude_ids
    )


def catalog_logsumexp(
    Q: Tensor,
    E: Tensor,
    *,
    bias: Tensor | None = None,
    temperature: float = 1.0,
    exclude_offsets: Tensor | None = None,
    exclude_ids: Tensor | None = None,
) -> Tensor:
    """log sum_a exp(logits[b, a]) over the non-excluded items, (B,) float32 (-inf for a row that
    excludes every item). Not differentiable (use catalog_cross_entropy for training)."""
    Q, E, bias, exclude_offsets, exclude_ids = _validate(Q, E, bias, temperature, exclude_offsets, exclude_ids)
    return torch.ops.recengine.catalog_logsumexp(Q, E, bias, float(temperature), exclude_offsets, exclude_ids)


def catalog_cross_entropy(
    Q: Tensor,
    E: Tensor,
    target: Tensor,
    *,
    bias: Tensor | None = None,
    temperature: float = 1.0,
    exclude_offsets: Tensor | None = None,
    exclude_ids: Tensor | None = None,
    reduction: str = "mean",
) -> Tensor:
    """-log pi(target | s) over the full (non-excluded) catalog, reduced by "mean" | "sum" | "none".

    Differentiable w.r.t. Q, E and bias; the backward walks the catalog again block by block (never the
    B x N matrix). target (B,) int32/int64: an id out of range raises IndexError, an excluded target
    ValueError.
    """
    check_choice("reduction", reduction, REDUCTIONS)
    Q, E, bias, exclude_offsets, exclude_ids = _validate(Q, E, bias, temperature, exclude_offsets, exclude_ids)
    check_tensor("target", target, dtypes=INDEX_DTYPES, shape=(Q.shape[0],))
    check_same_device(Q=Q, target=target)
    target = target.contiguous().to(torch.int64)
    if Q.shape[0] == 0 and reduction == "mean":
        raise ValueError("Q: the mean cross-entropy of an empty batch is undefined")
    loss, lse = torch.ops.recengine.catalog_cross_entropy_rows(
        Q, E, target, bias, float(temperature), exclude_offsets, exclude_ids
    )
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss
