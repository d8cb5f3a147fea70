"""Serving: a trained model loaded for inference (Recommender), its HTTP endpoint (recengine.serving.http).

    from recengine.serving import Recommender
    items, scores = Recommender.load("runs/sasrec", dtype="int8").recommend([[12, 7, 301]], k=10)

The names load lazily (PEP 562): `recengine.serving.threads` must be importable before torch is (the OpenMP
wait policy is read when torch starts).
"""

from __future__ import annotations

import importlib

__all__ = ["Recommender", "Recommendations"]


def __getattr__(name: str):
    """`Recommender` and `Recommendations` from recengine.serving.recommender, on first use."""
    if name in __all__:
        return getattr(importlib.import_module("recengine.serving.recommender"), name)
    raise AttributeError(f"module 'recengine.serving' has no attribute {name!r}")
