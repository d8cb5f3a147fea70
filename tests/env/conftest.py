"""Small, untrained sequence-aware simulators for the env tests (no training: fast and exact)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recengine.env.response_model import ResponseModel
from recengine.env.sequential_sim import SeqSimConfig, SequentialUserModel
from recengine.env.sessions import SessionModel
from recengine.nn import SequenceEncoder


def make_tiny_sim(
    num_users: int = 9,
    num_items: int = 14,
    *,
    seed: int = 0,
    max_len: int = 6,
    config: SeqSimConfig | None = None,
    session_model: SessionModel | None = None,
    no_click_offset: float = -1.0,
    popularity_weight: float = 1.0,
    min_history: int = 0,
) -> SequentialUserModel:
    """A random response model (seeded through its own Generator) over random train histories of
    min_history-7 items."""
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = SequenceEncoder(num_items, 8, max_len, num_layers=1, num_heads=1, dropout=0.0)
    bias = torch.randn(num_items, generator=gen)
    lengths = rng.integers(min_history, 8, num_users)
    lengths[0] = 7  # user 0 has a history longer than the encoder's window
    items = np.concatenate([rng.permutation(num_items)[:n] for n in lengths]).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    genres = np.zeros((num_items, 3))
    genres[np.arange(num_items), np.arange(num_items) % 3] = 1.0
    genres[0, 1] = 1.0  # an item with two genres
    return SequentialUserModel(
        ResponseModel(encoder, bias, popularity_weight=popularity_weight),
        offsets,
        items,
        genres,
        session_model or SessionModel(0.6, 0.5, 0.1),
        no_click_offset,
        user_features=rng.normal(size=(num_users, 2)),
        config=config or SeqSimConfig(slate_size=3, history_len=8, max_steps=12),
    )


@pytest.fixture
def tiny_sim() -> SequentialUserModel:
    return make_tiny_sim()
