"""The fused DQN TD loss: target, TD error, importance-weighted Huber loss and new priorities in one pass.

CPU -> recengine._C (C++), CUDA -> Triton (recengine.kernels.replay); reference:
recengine.reference.replay.td_loss_reference.
"""

from __future__ import annotations

import torch

from recengine._native import _C, as_array
from recengine.ops._checks import check_number, check_same_device, check_tensor
from recengine.ops._triton import triton_kernels

_FLOAT = (torch.float32,)
_DONE_DTYPES = (torch.float32, torch.bool, torch.uint8)


# ------------------------------------------------------------------------------ forward op
@torch.library.custom_op("recengine::td_loss", mutates_args=(), device_types="cpu")
def _td_loss(
    q_sa: torch.Tensor,
    next_q: torch.Tensor,
    reward: torch.Tensor,
    done: torch.Tensor,
    discount: torch.Tensor,
    weight: torch.Tensor,
    huber_delta: float,
    alpha: float,
    eps: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    td = torch.empty_like(q_sa)
    prio = torch.empty_like(q_sa)
    loss = _C.td_loss_forward(
        as_array(q_sa, "q_sa"),
        as_array(next_q, "next_q"),
        as_array(reward, "reward"),
        as_array(done, "done"),
        as_array(discount, "discount"),
        as_array(weight, "weight"),
        huber_delta,
        alpha,
        eps,
        as_array(td, "td"),
        as_array(prio, "new_priority"),
    )
    return torch.tensor(loss, dtype=q_sa.dtype), td, prio


@_td_loss.register_kernel("cuda")
def _td_loss_cuda(q_sa, next_q, reward, done, discount, weight, huber_delta, alpha, eps):
    kernels = triton_kernels("replay")
    return kernels.td_loss(q_sa, next_q, reward, done, discount, weight, huber_delta, alpha, eps)


@_td_loss.register_fake
def _td_loss_fake(q_sa, next_q, reward, done, discount, weight, huber_delta, alpha, eps):
    return q_sa.new_empty(()), torch.empty_like(q_sa), torch.empty_like(q_sa)


# ----------------------------------------------------------------------------- backward op
@torch.library.custom_op("recengine::td_loss_backward", mutates_args=(), device_types="cpu")
def _td_loss_backward(
    grad_loss: torch.Tensor,
    grad_td: torch.Tensor,
    td: torch.Tensor,
    weight: torch.Tensor,
    discount: torch.Tensor,
    done: torch.Tensor,
    huber_delta: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    grad_q = torch.empty_like(td)
    grad_nq = torch.empty_like(td)
    _C.td_loss_backward(
        float(grad_loss),
        as_array(grad_td, "grad_td"),
        as_array(td, "td"),
        as_array(weight, "weight"),
        as_array(discount, "discount"),
        as_array(done, "done"),
        huber_delta,
        as_array(grad_q, "grad_q_sa"),
        as_array(grad_nq, "grad_next_q"),
    )
    return grad_q, grad_nq


@_td_loss_backward.register_kernel("cuda")
def _td_loss_backward_cuda(grad_loss, grad_td, td, weight, discount, done, huber_delta):
    kernels = triton_kernels("replay")
    return kernels.td_loss_backward(grad_loss, grad_td, td, weight, discount, done, huber_delta)


@_td_loss_backward.register_fake
def _td_loss_backward_fake(grad_loss, grad_td, td, weight, discount, done, huber_delta):
    return torch.empty_like(td), torch.empty_like(td)


# -------------------------------------------------------------------------------- autograd
def _setup_context(ctx, inputs, output):
    _, _, _, done, discount, weight, huber_delta, _, _ = inputs
    _, td, prio = output
    ctx.save_for_backward(td, weight, discount, done)
    ctx.huber_delta = huber_delta
    ctx.mark_non_differentiable(prio)


def _backward(ctx, grad_loss, grad_td, grad_prio):
    td, weight, discount, done = ctx.saved_tensors
    if grad_loss is None:
        grad_loss = torch.zeros((), dtype=td.dtype, device=td.device)
    grad_td = torch.zeros_like(td) if grad_td is None else grad_td.contiguous()
    grad_q, grad_nq = _td_loss_backward(grad_loss.contiguous(), grad_td, td, weight, discount, done, ctx.huber_delta)
    return (
        grad_q if ctx.needs_input_grad[0] else None,
        grad_nq if ctx.needs_input_grad[1] else None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
    )


torch.library.register_autograd("recengine::td_loss", _backward, setup_context=_setup_context)


# ------------------------------------------------------------------------------ public API
def td_loss(
    q_sa: torch.Tensor,
    next_q: torch.Tensor,
    reward: torch.Tensor,
    done: torch.Tensor,
    discount: torch.Tensor,
    weight: torch.Tensor,
    *,
    huber_delta: float = 1.0,
    alpha: float = 0.6,
    eps: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Importance-weighted Huber TD loss of a (double) DQN step, with the new replay priorities, fused.

    Each tensor holds one value per transition of a batch and is named after that value, singular, like the
    replay's fields (``reward``, ``done``, ``discount``) and torch's ``input``/``target``/``weight``.
    All tensors (B,) on one device, B >= 1; float32, except ``done`` (bool, uint8 or float32 0/1):

    - ``target = reward + discount * (1 - done) * next_q`` (``next_q`` is the bootstrap value, e.g.
      the target net's Q at the online net's argmax; ``discount`` is gamma^m. PrioritizedReplay's
      ``"discount"``/``"n_discount"`` already fold ``1 - done`` in, so with them pass ``done`` as
      zeros or as the done flags: multiplying by ``1 - done`` twice changes nothing for 0/1 flags);
    - ``td_error = target - q_sa``;
    - ``loss = mean(weight * huber(td_error))`` with ``huber(x) = x^2 / 2`` for ``|x| <= huber_delta``,
      else ``huber_delta * (|x| - huber_delta / 2)`` (= torch's ``huber_loss``);
    - ``new_priority = (|td_error| + eps) ** alpha`` (not differentiable).

    Returns ``(loss 0-d, td_error (B,), new_priority (B,))``. Differentiable w.r.t. ``q_sa`` and
    ``next_q`` (only when it requires grad; DQN computes it under no_grad, so the target is detached);
    ``td_error`` is differentiable too. Not twice differentiable.

    With a PrioritizedReplay of the same alpha: ``replay.update_priorities(indices, new_priority,
    exponent_applied=True)``; or pass ``alpha=1.0`` here and use the replay's default, which treats
    priorities as raw and raises them to its alpha. The loss is accumulated in float64 on the CPU and
    from float32 per-block partial sums on the GPU.
    """
    for name, t in (("q_sa", q_sa), ("next_q", next_q), ("reward", reward), ("discount", discount), ("weight", weight)):
        check_tensor(name, t, dtypes=_FLOAT, ndim=1)
    check_tensor("done", done, dtypes=_DONE_DTYPES, ndim=1)
    batch = q_sa.shape[0]
    if batch < 1:
        raise ValueError("q_sa: the batch must hold at least one sample")
    for name, t in (("next_q", next_q), ("reward", reward), ("done", done), ("discount", discount), ("weight", weight)):
        if t.shape[0] != batch:
            raise ValueError(f"{name}: expected shape ({batch},) like q_sa, got {tuple(t.shape)}")
    check_same_device(q_sa=q_sa, next_q=next_q, reward=reward, done=done, discount=discount, weight=weight)
    huber_delta = check_number("huber_delta", huber_delta, minimum=0.0, exclusive=True)
    alpha = check_number("alpha", alpha, minimum=0.0)
    eps = check_number("eps", eps, minimum=0.0)
    if q_sa.device.type not in ("cpu", "cuda"):
        raise ValueError(f"q_sa: expected a CPU or CUDA tensor, got device {q_sa.device}")
    return _td_loss(
        q_sa.contiguous(),
        next_q.contiguous(),
        reward.contiguous(),
        done.to(torch.float32).contiguous(),
        discount.contiguous(),
        weight.contiguous(),
        huber_delta,
        alpha,
        eps,
    )
