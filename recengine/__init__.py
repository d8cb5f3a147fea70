"""recengine: fused operators and a full system for large-sequence-model + RL recommenders.

The names a user needs first are here, so that a session starts with one import::

    from recengine import Recommender, SASRecConfig, load_dataset, train_sasrec

The top-level names are loaded lazily (PEP 562): ``import recengine`` imports neither torch nor any subpackage, so
importing a NumPy-only part of the package, such as ``recengine.eval.ope``, stays light, and
``recengine.serving.threads`` can still set the OpenMP wait policy before torch starts.
"""

from __future__ import annotations

import importlib

from recengine._version import __version__

#: the names a user needs first, each imported from its module on first use (``__getattr__`` below)
_LAZY_NAMES = (
    "Recommender",
    "load_dataset",
    "load_interactions",
    "leave_one_out",
    "histories_of",
    "SASRecConfig",
    "train_sasrec",
    "EmbeddingTables",
    "TableSpec",
)

#: subpackages ``import recengine`` used to load eagerly; still reachable as attributes, loaded on first use (not the
#: test references, recengine.reference: product code never loads them)
_LAZY_SUBMODULES = ("optim", "ops", "nn")

__all__ = [*_LAZY_NAMES, *_LAZY_SUBMODULES, "__version__"]


def __getattr__(name: str):
    """The names of ``_LAZY_NAMES`` and the subpackages of ``_LAZY_SUBMODULES``, imported on first use (written
    out one by one, so that tests/test_layers.py sees every arrow)."""
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"recengine.{name}")
    if name == "Recommender":
        from recengine.serving.recommender import Recommender

        return Recommender
    if name == "load_dataset":
        from recengine.data.registry import load_dataset

        return load_dataset
    if name == "load_interactions":
        from recengine.data.interactions import load_interactions

        return load_interactions
    if name in ("leave_one_out", "histories_of"):
        from recengine.data import sequences

        return getattr(sequences, name)
    if name in ("SASRecConfig", "train_sasrec"):
        from recengine.train import config, sasrec

        return getattr(config if name == "SASRecConfig" else sasrec, name)
    if name in ("EmbeddingTables", "TableSpec"):
        from recengine.nn import embedding_tables

        return getattr(embedding_tables, name)
    raise AttributeError(f"module 'recengine' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
