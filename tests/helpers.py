"""Shared test utilities."""
from __future__ import annotations

import torch

#: the device the Triton kernels are tested on: CUDA when present, else the CPU under TRITON_INTERPRET=1
TRITON_DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def assert_close(actual: torch.Tensor, expected: torch.Tensor, *, rtol: float = 1e-5, atol: float = 1e-6,
                 name: str = "tensor") -> None:
    """allclose that says how many elements differ, the first few, and NaN/inf mismatches apart."""
    assert actual.shape == expected.shape, f"{name}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    a = actual.detach().to("cpu", torch.float64)
    e = expected.detach().to("cpu", torch.float64)
    nan_mismatch = torch.isnan(a) != torch.isnan(e)
    inf_mismatch = (torch.isinf(a) | torch.isinf(e)) & (a != e) & ~torch.isnan(a) & ~torch.isnan(e)
    finite = torch.isfinite(a) & torch.isfinite(e)
    bad = finite & ((a - e).abs() > atol + rtol * e.abs())
    msgs = []
    if nan_mismatch.any():
        msgs.append(f"{int(nan_mismatch.sum())} NaN mismatches at {nan_mismatch.nonzero()[:5].tolist()}")
    if inf_mismatch.any():
        msgs.append(f"{int(inf_mismatch.sum())} inf mismatches at {inf_mismatch.nonzero()[:5].tolist()}")
    if bad.any():
        idx = bad.nonzero()[:5]
        detail = ", ".join(f"{tuple(i.tolist())}: {a[tuple(i)]:.6g} vs {e[tuple(i)]:.6g}" for i in idx)
        msgs.append(f"{int(bad.sum())}/{a.numel()} elements differ (max abs diff "
                    f"{(a - e)[finite].abs().max():.3g}); first: {detail}")
    assert not msgs, f"{name}: " + "; ".join(msgs)
