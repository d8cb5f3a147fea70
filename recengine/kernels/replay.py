"""Triton kernels of the replay family: the fused TD loss, forward and backward.

Each launcher is named after the torch.library op it implements on CUDA (`torch.ops.recengine.<name>`).
Each program handles BLOCK samples; the forward writes one partial loss sum per program, summed
afterwards (deterministic, no atomics). Runs on CUDA, and on CPU tensors under TRITON_INTERPRET=1.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK = 1024


@triton.jit
def _td_loss_fwd_kernel(
    q_ptr,
    nq_ptr,
    r_ptr,
    d_ptr,
    g_ptr,
    w_ptr,
    td_ptr,
    prio_ptr,
    partial_ptr,
    batch,
    huber_delta,
    alpha,
    eps,
    BLOCK: tl.constexpr,
):
    pid = tl.program_id(0)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < batch
    q = tl.load(q_ptr + offs, mask=mask, other=0.0)
    nq = tl.load(nq_ptr + offs, mask=mask, other=0.0)
    r = tl.load(r_ptr + offs, mask=mask, other=0.0)
    d = tl.load(d_ptr + offs, mask=mask, other=0.0)
    g = tl.load(g_ptr + offs, mask=mask, other=0.0)
    w = tl.load(w_ptr + offs, mask=mask, other=0.0)
    target = r + (g * (1.0 - d)) * nq
    td = target - q
    a = tl.abs(td)
    h = tl.where(a <= huber_delta, 0.5 * td * td, huber_delta * (a - 0.5 * huber_delta))
    base = a + eps
    # base^alpha as exp2(alpha * log2(base)) (float32 math available on every backend and the interpreter);
    # base == 0 only when eps == 0: 0^alpha, which is 1 for alpha == 0 as in torch.pow
    safe = tl.where(base > 0.0, base, 1.0)
    powered = tl.exp2(alpha * tl.log2(safe))
    zero_pow = tl.where(alpha == 0.0, 1.0, 0.0)
    prio = tl.where(base > 0.0, powered, zero_pow)
    tl.store(td_ptr + offs, td, mask=mask)
    tl.store(prio_ptr + offs, prio, mask=mask)
    tl.store(partial_ptr + pid, tl.sum(tl.where(mask, w * h, 0.0), axis=0))


@triton.jit
def _td_loss_bwd_kernel(
    gl_ptr, gtd_ptr, td_ptr, w_ptr, g_ptr, d_ptr, gq_ptr, gnq_ptr, batch, huber_delta, BLOCK: tl.constexpr
):
    pid = tl.program_id(0)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < batch
    grad_loss = tl.load(gl_ptr)
    td = tl.load(td_ptr + offs, mask=mask, other=0.0)
    w = tl.load(w_ptr + offs, mask=mask, other=0.0)
    g = tl.load(g_ptr + offs, mask=mask, other=0.0)
    d = tl.load(d_ptr + offs, mask=mask, other=0.0)
    gtd = tl.load(gtd_ptr + offs, mask=mask, other=0.0)
    clipped = tl.minimum(tl.maximum(td, -huber_delta), huber_delta)
    total = (grad_loss / batch) * w * clipped + gtd
    tl.store(gq_ptr + offs, -total, mask=mask)
    tl.store(gnq_ptr + offs, total * (g * (1.0 - d)), mask=mask)


def td_loss(q_sa, next_q, reward, done, discount, weight, huber_delta: float, alpha: float, eps: float):
    """(loss 0-d, td (B,), new_priority (B,)) for contiguous float32 (B,) inputs (checked by the op)."""
    batch = q_sa.numel()
    td = torch.empty_like(q_sa)
    prio = torch.empty_like(q_sa)
    grid = (triton.cdiv(batch, BLOCK),)
    partial = torch.empty(grid[0], dtype=torch.float32, device=q_sa.device)
    _td_loss_fwd_kernel[grid](
        q_sa,
        next_q,
        reward,
        done,
        discount,
        weight,
        td,
        prio,
        partial,
        batch,
        float(huber_delta),
        float(alpha),
        float(eps),
        BLOCK=BLOCK,
    )
    loss = partial.sum() / batch
    return loss, td, prio


def td_loss_backward(grad_loss, grad_td, td, weight, discount, done, huber_delta: float):
    """(grad_q_sa, grad_next_q); grad_loss is a 0-d tensor, grad_td (B,) (zeros when unused)."""
    batch = td.numel()
    grad_q = torch.empty_like(td)
    grad_nq = torch.empty_like(td)
    grid = (triton.cdiv(batch, BLOCK),)
    _td_loss_bwd_kernel[grid](
        grad_loss.reshape(1),
        grad_td,
        td,
        weight,
        discount,
        done,
        grad_q,
        grad_nq,
        batch,
        float(huber_delta),
        BLOCK=BLOCK,
    )
    return grad_q, grad_nq
