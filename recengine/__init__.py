"""recengine: fused operators and a full system for large-sequence-model + RL recommenders.

The top-level names are loaded lazily (PEP 562), so that importing a NumPy-only part of the package,
such as ``recengine.eval.ope``, does not import torch.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

__all__ = ["optim", "TableSpec", "__version__"]

#: subpackages ``import recengine`` used to load eagerly; still reachable as attributes, loaded on first use (not the
#: test references, recengine.reference: product code never loads them)
_LAZY_SUBMODULES = ("optim", "ops", "nn")


def __getattr__(name: str):
    """``recengine.TableSpec`` and the subpackages in ``_LAZY_SUBMODULES`` on first use."""
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"recengine.{name}")
    if name == "TableSpec":
        from recengine.nn.embedding_tables import TableSpec

        return TableSpec
    raise AttributeError(f"module 'recengine' has no attribute {name!r}")
