"""Adam for dense parameters with its step count on the device: an update with no host sync.

torch.optim.Adam reads its step count back to the host on the CPU (and everywhere unless capturable=True,
which it allows on accelerators only); this one keeps every scalar of the update in tensors beside the
parameters, so the same code runs without a sync on the CPU and on CUDA and can be captured in a CUDA graph.
The math is torch.optim.Adam's (no weight decay, no amsgrad); the results agree to float32 rounding.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from recengine.ops._checks import check_number

__all__ = ["SyncFreeAdam"]


class SyncFreeAdam:
    """Adam over `params` (tensors that require grad). step() updates every parameter that has a gradient;
    zero_grad() sets the gradients to None (a captured step then allocates them in its graph's pool)."""

    def __init__(
        self, params: Iterable[Tensor], lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8
    ):
        self.params = [p for p in params]
        if not self.params:
            raise ValueError("params: need at least one parameter")
        self.lr = check_number("lr", lr, minimum=0.0)
        self.eps = check_number("eps", eps, minimum=0.0, exclusive=True)
        if len(betas) != 2 or not all(0.0 <= check_number("betas", b, minimum=0.0) < 1.0 for b in betas):
            raise ValueError(f"betas: expected two numbers in [0, 1), got {betas!r}")
        self.betas = (float(betas[0]), float(betas[1]))
        self.exp_avg = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.step_count = torch.zeros((), dtype=torch.float32, device=self.params[0].device)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """One Adam update of the parameters that have a gradient (which ones is fixed by the graph, not by
        tensor values, so a captured step updates the same ones every replay)."""
        beta1, beta2 = self.betas
        self.step_count.add_(1.0)
        correction1 = 1.0 - torch.pow(beta1, self.step_count)
        correction2_sqrt = (1.0 - torch.pow(beta2, self.step_count)).sqrt()
        neg_step_size = -self.lr / correction1
        for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq):
            if p.grad is None:
                continue
            g = p.grad
            m.lerp_(g, 1.0 - beta1)
            v.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
            denom = (v.sqrt() / (correction2_sqrt * neg_step_size)).add_(self.eps / neg_step_size)
            p.addcdiv_(m, denom)
