"""recengine.nn.persistence: the large model and a scorer rebuilt from their tensors and metadata, checked."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest
import torch

from recengine.checkpoint import CheckpointError
from recengine.data import make_synthetic
from recengine.nn import CatalogHead
from recengine.nn.persistence import build_recommender, build_scorer, model_spec, scorer_metadata, scorer_tensors
from recengine.train import SASRecConfig, model_from_data

CFG = SASRecConfig(dim=16, max_len=8, num_layers=1, num_heads=2, user_features=True, id_dropout=0.25)
HIST = torch.tensor([[1, 2, 3, -1], [4, -1, -1, -1]])


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return model_from_data(make_synthetic(30, 20, seed=0), CFG).eval()


def test_recommender_rebuilt_from_its_state_and_spec(model):
    meta = {"model": json.dumps(model_spec(model))}
    loaded = build_recommender("m", dict(model.state_dict()), meta, CFG).eval()
    assert loaded.use_users and loaded.encoder.id_dropout == 0.25
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name
    users = torch.tensor([0, 1])
    assert torch.equal(loaded.user_states(HIST, users), model.user_states(HIST, users))


def test_recommender_with_other_sizes_is_refused_naming_the_file(model):
    meta = {"model": json.dumps(model_spec(model)), "config": json.dumps(asdict(CFG))}
    other = SASRecConfig(**{**asdict(CFG), "dim": 32})
    with pytest.raises(CheckpointError, match="m.safetensors: the weights do not match"):
        build_recommender("m.safetensors", dict(model.state_dict()), meta, other)


@pytest.mark.parametrize("own_table", [False, True])
def test_scorer_round_trip(model, own_table):
    head = CatalogHead(model.encoder.num_items, CFG.dim, own_table=own_table) if own_table else model.head
    encoder, loaded_head = build_scorer(
        "s", scorer_tensors(model.encoder, head), scorer_metadata(model.encoder, head), dropout=0.0
    )
    assert encoder.dropout.p == 0.0 and (loaded_head.weight is not None) == own_table
    for name, value in model.encoder.state_dict().items():
        assert torch.equal(encoder.state_dict()[name], value), name


def test_scorer_metadata_without_its_fields_is_refused(model):
    meta = scorer_metadata(model.encoder, model.head)
    spec = json.loads(meta["encoder"])
    del spec["num_layers"]
    with pytest.raises(CheckpointError, match="s: the weights do not match the scorer"):
        build_scorer("s", scorer_tensors(model.encoder, model.head), {**meta, "encoder": json.dumps(spec)})
