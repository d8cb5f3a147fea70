"""recengine: fused operators and a full system for large-sequence-model + RL recommenders.

The top-level names are loaded lazily (PEP 562), so that importing a NumPy-only part of the package,
such as ``recengine.eval.ope``, does not import torch.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

__all__ = ["optim", "TableSpec", "__version__"]


def __getattr__(name: str):
    """``recengine.optim`` and ``recengine.TableSpec`` on first use."""
    if name == "optim":
        return importlib.import_module("recengine.optim")
    if name == "TableSpec":
        from recengine.nn.embedding_tables import TableSpec
        return TableSpec
    raise AttributeError(f"module 'recengine' has no attribute {name!r}")
