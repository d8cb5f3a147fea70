"""Serving: a trained model loaded for inference (Recommender), its HTTP endpoint (recengine.serving.http).

    from recengine.serving import Recommender
    items, scores = Recommender.load("runs/sasrec", dtype="int8").recommend([[12, 7, 301]], k=10)
"""
from recengine.serving.recommender import Recommendations, Recommender  # noqa: F401

__all__ = ["Recommender", "Recommendations"]
