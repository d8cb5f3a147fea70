"""recengine.serving.agent_checkpoint: an agent's scorer round-trips and serves like the modules it was saved from."""

import pytest
import torch

from recengine.agents.scorer import Scorer, untied_scorer
from recengine.checkpoint import CheckpointError
from recengine.serving import Recommender
from recengine.serving.agent_checkpoint import load_scorer, save_scorer
from recengine.train.sasrec_checkpoint import load_model

HISTORIES = [[1, 2, 3, 50], [7], []]


@pytest.fixture
def scorer(model_dir):
    model, _ = load_model(str(model_dir / "model.safetensors"))
    s = untied_scorer(Scorer(model.encoder, model.head))
    with torch.no_grad():
        s.head.weight.copy_(torch.randn(s.head.weight.shape, generator=torch.Generator().manual_seed(3)))
    return s


def test_round_trip_keeps_every_weight(scorer, tmp_path):
    save_scorer(str(tmp_path / "a.safetensors"), scorer, agent_name="dqn")
    encoder, head, meta = load_scorer(str(tmp_path / "a.safetensors"))
    assert meta["agent"] == "dqn" and meta["kind"] == "scorer"
    for name, value in {**scorer.encoder.state_dict()}.items():
        assert torch.equal(encoder.state_dict()[name], value), name
    assert torch.equal(head.weight, scorer.head.weight) and torch.equal(head.bias, scorer.head.bias)


def test_recommender_loads_a_scorer_checkpoint(scorer, tmp_path):
    save_scorer(str(tmp_path / "a.safetensors"), scorer)
    loaded = Recommender.load(tmp_path / "a.safetensors", dtype="float32")
    direct = Recommender.from_modules(scorer.encoder.eval(), scorer.head)
    assert torch.equal(loaded.recommend(HISTORIES).items, direct.recommend(HISTORIES).items)


def test_a_model_file_is_not_a_scorer(model_dir):
    with pytest.raises(CheckpointError, match="not a scorer checkpoint"):
        load_scorer(str(model_dir / "model.safetensors"))


def test_save_refuses_a_module_without_encoder_and_head(tmp_path):
    with pytest.raises(TypeError, match="scorer"):
        save_scorer(str(tmp_path / "x.safetensors"), torch.nn.Linear(2, 2))
