"""Access to the compiled CPU kernels (recengine._C) and zero-copy NumPy views of CPU tensors."""
from __future__ import annotations

import numpy as np
import torch

try:
    from recengine import _C  # noqa: F401  (re-exported)
except ImportError as exc:  # pragma: no cover - only when the extension was never built
    raise ImportError(
        "recengine._C is not built; run `pip install -e .` (or `python setup.py build_ext --inplace`) "
        "in the repository root"
    ) from exc


_team_size = [0]  # the OpenMP team size last given to the kernels


def kernels():
    """recengine._C with its OpenMP threads matched to torch.get_num_threads(), so torch.set_num_threads
    (and `recengine bench --threads`) governs the C++ kernels too."""
    n = torch.get_num_threads()
    if n != _team_size[0]:
        _C.set_num_threads(n)
        _team_size[0] = n
    return _C


def as_array(t: torch.Tensor, name: str) -> np.ndarray:
    """A NumPy view sharing memory with the CPU tensor `t` (no copy, so in-place kernel writes land in `t`).

    The public op has already checked device, dtype and contiguity; this re-checks the two facts a
    silent copy would hide.
    """
    if t.device.type != "cpu":
        raise ValueError(f"{name}: expected a CPU tensor, got device {t.device}")
    if not t.is_contiguous():
        raise ValueError(f"{name}: expected a contiguous tensor")
    return t.detach().numpy()
