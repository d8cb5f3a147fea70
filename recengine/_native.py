"""The one way to the compiled CPU kernels (recengine._C), and the memory facts they share.

Every CPU path (the public ops and the prioritized replay buffer) reaches the extension through
`cpu_ops()`, so the OpenMP team of the C++ loops always follows `torch.set_num_threads`.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np
import torch

try:
    from recengine import _C
except ImportError as exc:  # pragma: no cover - only when the extension was never built
    raise ImportError(
        "recengine._C is not built; run `pip install -e .` (or `python setup.py build_ext --inplace`) "
        "in the repository root"
    ) from exc

#: Buffers at least this large (two 2 MiB huge pages) are advised onto transparent huge pages.
HUGE_PAGE_MIN_BYTES = 4 << 20

_team_size = [0]  # the OpenMP team size last given to the kernels


def cpu_ops() -> ModuleType:
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


def empty_with_huge_pages(
    shape: tuple[int, ...], *, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> torch.Tensor:
    """An uninitialised tensor; on the CPU (Linux), one of at least HUGE_PAGE_MIN_BYTES has its memory
    advised onto transparent huge pages before the first touch.

    Embedding tables and replay columns are read at random rows: with 4 KiB pages nearly every row is a
    TLB miss. The advice is a hint; where the OS does not take it, the tensor is an ordinary one.
    """
    t = torch.empty(shape, dtype=dtype, device=device)
    if t.device.type == "cpu" and t.numel() * t.element_size() >= HUGE_PAGE_MIN_BYTES:
        # a byte view: every dtype (bfloat16 included) has a NumPy equivalent as raw bytes
        cpu_ops().advise_huge_pages(t.reshape(-1).view(torch.uint8).numpy())
    return t
