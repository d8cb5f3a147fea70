"""The catalog-scoring shapes and inputs the policy and quantized_tables workloads share (W2).

W2 = B = 1024 users x N = 262,144 items, D = 64, k = 10 (quick: 64 x 8192, D = 32); the logits have unit
variance, like a trained two-tower model's.
"""

from __future__ import annotations

import torch


def catalog_shape(quick: bool) -> tuple[int, int, int, int]:
    """(B, N, D, k) of W2, or of its quick version."""
    return (64, 8192, 32, 10) if quick else (1024, 262144, 64, 10)


def catalog_inputs(device: str, B: int, N: int, D: int):
    """(Q (B, D), E (N, D), bias (N,), target (B,)) drawn from a fixed seed, on `device`."""
    g = torch.Generator().manual_seed(0)
    # unit-variance logits, like a trained two-tower model's (the sampler's filters get no help from scale)
    Q = (torch.randn(B, D, generator=g) / D**0.25).to(device)
    E = (torch.randn(N, D, generator=g) / D**0.25).to(device)
    bias = (0.1 * torch.randn(N, generator=g)).to(device)
    target = torch.randint(0, N, (B,), generator=g).to(device)
    return Q, E, bias, target
