"""The one way from the public ops to the Triton kernels (recengine.kernels), imported on first use.

Triton is an optional dependency (the `gpu` extra): a CPU install never imports it. Only an op that meets a
CUDA tensor (or a test under TRITON_INTERPRET=1) loads a kernel module, and a missing triton is then a clear
ImportError instead of a failure at `import recengine`.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["triton_kernels"]


def triton_kernels(family: str) -> ModuleType:
    """recengine.kernels.<family> (embedding_bag, policy or replay); ImportError saying how to get triton."""
    try:
        return importlib.import_module(f"recengine.kernels.{family}")
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] != "triton":
            raise
        raise ImportError(
            f"recengine: the {family} op got a CUDA tensor, and its GPU kernels need triton, which is "
            "not installed; install it with `pip install 'recengine[gpu]'` (or `pip install triton`)"
        ) from exc
