"""Cold items in training: out of the softmax (no gradient at all), then a zero id vector and the mean bias."""

from __future__ import annotations

import pytest
import torch

from recengine.nn import CatalogHead, SequenceEncoder
from recengine.nn.catalog_head import MASKED_LOGIT
from recengine.nn.sequence_recommender import SequenceRecommender
from recengine.train.cold_items import forget_cold_items, mask_cold_items

N = 6
COLD = [1, 4]


def model() -> SequenceRecommender:
    encoder = SequenceEncoder(N, dim=4, max_len=4, num_layers=1, num_heads=1, dropout=0.0)
    return SequenceRecommender(encoder, CatalogHead(N, 4), use_users=False)


def test_masked_items_get_no_gradient_to_speak_of_as_negatives():
    m = model()
    mask_cold_items(m, COLD)
    inputs = torch.tensor([[0, 2, 3], [5, 0, 2]])
    targets = torch.tensor([[2, 3, 5], [0, 2, 3]])
    m.loss(inputs, targets).backward()
    # the fused softmax clamps its exponent, so a masked item's probability is a denormal, not exactly zero
    assert float(m.encoder.item_embedding.grad[COLD].abs().max()) < 1e-30
    assert float(m.head.bias.grad[COLD].abs().max()) < 1e-30
    assert bool(m.encoder.item_embedding.grad[[0, 2]].abs().sum() > 0)
    assert torch.all(m.head.bias.detach()[COLD] == MASKED_LOGIT)


def test_forget_sets_a_zero_id_vector_and_the_warm_mean_bias():
    m = model()
    with torch.no_grad():
        m.head.bias.copy_(torch.arange(N, dtype=torch.float32))
    forget_cold_items(m, COLD)
    assert torch.all(m.encoder.item_embedding.detach()[COLD] == 0)
    warm_mean = torch.tensor([0.0, 2, 3, 5]).mean()
    assert torch.allclose(m.head.bias.detach()[COLD], warm_mean.expand(2))


@pytest.mark.parametrize("items", [[N], [-1], [[0, 1]]])
def test_bad_item_ids_are_rejected(items):
    with pytest.raises(IndexError, match="cold_items"):
        mask_cold_items(model(), items)
