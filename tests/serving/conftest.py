"""A small trained-shape large model saved as `recengine train` saves it, shared by the serving tests."""

from __future__ import annotations

import pytest
import torch

from recengine.data import make_synthetic
from recengine.train import SASRecConfig, model_from_data, sasrec_checkpoint

CFG = SASRecConfig(dim=16, max_len=8, num_layers=1, num_heads=2, user_features=True)
NUM_ITEMS = 300


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    """A directory holding model.safetensors (item and user side features, a non-zero item bias)."""
    torch.manual_seed(0)
    model = model_from_data(make_synthetic(40, NUM_ITEMS, seed=0), CFG).eval()
    with torch.no_grad():
        model.head.bias.copy_(torch.randn(NUM_ITEMS, generator=torch.Generator().manual_seed(1)) * 0.1)
    out = tmp_path_factory.mktemp("served")
    sasrec_checkpoint.save_model(str(out / "model.safetensors"), model, CFG, "synthetic")
    return out
