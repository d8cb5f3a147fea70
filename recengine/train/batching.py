"""Batches of training windows: with similar lengths, so a batch carries little padding to compute, or uniformly
shuffled, so every batch mixes short and long histories."""

from __future__ import annotations

import numpy as np


def length_bucketed_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled batches of window indices with similar lengths: shuffle, sort each run of 16 batches by length,
    cut into batches, shuffle the batches. Every index appears in exactly one batch."""
    if batch_size < 1:
        raise ValueError(f"batch_size: expected >= 1, got {batch_size}")
    order = rng.permutation(len(lengths))
    chunk = batch_size * 16
    batches = []
    for c0 in range(0, len(order), chunk):
        part = order[c0 : c0 + chunk]
        part = part[np.argsort(-lengths[part], kind="stable")]
        batches += [part[b0 : b0 + batch_size] for b0 in range(0, len(part), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def shuffled_batches(count: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Batches of a uniform shuffle of the `count` window indices (each in exactly one batch): every batch mixes
    windows of every length, so each target token weighs about the same in the batch-mean loss."""
    if batch_size < 1:
        raise ValueError(f"batch_size: expected >= 1, got {batch_size}")
    order = rng.permutation(count)
    return [order[b0 : b0 + batch_size] for b0 in range(0, count, batch_size)]
