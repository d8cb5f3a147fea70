"""Items kept out of training (cold-start evaluation): masked out of the training softmax, then "forgotten".

A cold item has no interaction in training. Left in the full-catalog softmax it would still be trained, as a
negative at every position (its id vector, its bias and its text tokens pushed down), which no real new item ever
is. So during training its bias is set to ``MASKED_LOGIT``: its softmax probability underflows (to zero, or to a
denormal where the fused softmax clamps its exponent), so what it receives as a negative is no gradient to speak of
(and AdamW, which does not decay embeddings or biases, leaves it practically as it is). After
training the model is told what it knows of the item: nothing from its id, so its id vector is set to zero and its
bias to the mean bias of the items it was trained on; its side features and text still give it a vector.
"""

from __future__ import annotations

import numpy as np
import torch

from recengine.nn.catalog_head import MASKED_LOGIT
from recengine.nn.sequence_recommender import SequenceRecommender


def _index(model: SequenceRecommender, items) -> torch.Tensor:
    items = torch.as_tensor(np.asarray(items, dtype=np.int64))
    n = model.encoder.num_items
    if items.dim() != 1 or (items.numel() and (items.min() < 0 or items.max() >= n)):
        raise IndexError(f"cold_items: expected a 1-D array of item ids in [0, {n})")
    return items


@torch.no_grad()
def mask_cold_items(model: SequenceRecommender, items) -> None:
    """Keep `items` out of the training softmax (their bias set to MASKED_LOGIT); the head must have a bias."""
    items = _index(model, items)
    if model.head.bias is None:
        raise ValueError("cold_items: the catalog head has no bias to mask them with")
    model.head.bias[items] = MASKED_LOGIT


@torch.no_grad()
def forget_cold_items(model: SequenceRecommender, items) -> None:
    """After training: zero id vector and the warm items' mean bias for `items`."""
    items = _index(model, items)
    model.encoder.item_embedding[items] = 0.0
    if model.head.bias is not None:
        warm = torch.ones(model.encoder.num_items, dtype=torch.bool)
        warm[items] = False
        model.head.bias[items] = model.head.bias[warm].mean() if bool(warm.any()) else 0.0
