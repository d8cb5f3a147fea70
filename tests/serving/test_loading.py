"""recengine.serving.loading.load_any: every kind of checkpoint told apart, its file read once."""

from __future__ import annotations

import pytest
import torch

from recengine import checkpoint
from recengine.agents.baselines import SupervisedPolicy
from recengine.agents.persistence import load_agent, save_agent
from recengine.agents.scorer import Scorer, untied_scorer
from recengine.checkpoint import CheckpointError
from recengine.serving import Recommender
from recengine.serving.agent_checkpoint import save_scorer
from recengine.serving.loading import load_any
from recengine.train.sasrec_checkpoint import load_model, save_training_state
from tests.serving.conftest import CFG

HISTORIES = [[1, 2, 3, 50], [7], []]


@pytest.fixture
def scorer(model_dir):
    model, _ = load_model(str(model_dir / "model.safetensors"))
    return untied_scorer(Scorer(model.encoder, model.head), bias_init=0.5)


def test_a_run_directory_loads_its_model_file(model_dir):
    loaded = load_any(model_dir)
    assert loaded.kind == "model" and loaded.path == str(model_dir / "model.safetensors")
    model, cfg = loaded.model()
    want, _ = load_model(str(model_dir / "model.safetensors"))
    assert cfg == CFG and all(torch.equal(v, want.state_dict()[k]) for k, v in model.state_dict().items())
    encoder, head, use_users = loaded.serving_modules()
    assert use_users and encoder is not None and head is not None


def test_a_training_checkpoint_serves_its_best_weights(model_dir, tmp_path):
    model, _ = load_model(str(model_dir / "model.safetensors"))
    best = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model.head.bias.add_(1.0)  # the current weights differ from the best ones
    opt = torch.optim.AdamW(model.parameters())
    save_training_state(str(tmp_path / "checkpoint.safetensors"), model, CFG, "", best=best, optimizer=opt, trainer={})
    loaded = load_any(tmp_path)
    assert loaded.kind == "training"
    assert torch.equal(loaded.model()[0].head.bias, best["head.bias"])


def test_a_scorer_file_serves_its_scorer(scorer, tmp_path):
    save_scorer(str(tmp_path / "s.safetensors"), scorer)
    loaded = load_any(tmp_path / "s.safetensors")
    assert loaded.kind == "scorer"
    encoder, head, use_users = loaded.serving_modules()
    assert not use_users and torch.equal(head.weight, scorer.head.weight)
    with pytest.raises(CheckpointError, match="not the large model"):
        loaded.model()
    with pytest.raises(CheckpointError, match="not an agent checkpoint"):
        loaded.agent()


def test_an_agent_file_gives_the_agent_and_serves_its_scorer(scorer, tmp_path):
    path = str(tmp_path / "a.safetensors")
    save_agent(SupervisedPolicy(scorer, 10), path)
    loaded = load_any(path)
    assert loaded.kind == "agent"
    agent, direct = loaded.agent(), load_agent(path)
    assert type(agent) is type(direct) and agent.k == direct.k == 10
    assert all(torch.equal(v, direct.scorer.state_dict()[k]) for k, v in agent.scorer.state_dict().items())
    served = Recommender.load(path).recommend(HISTORIES)
    want = Recommender.from_modules(scorer.encoder.eval(), scorer.head).recommend(HISTORIES)
    assert torch.equal(served.items, want.items)


def test_recommender_load_opens_the_file_once(model_dir, monkeypatch):
    opened = []
    real = checkpoint.safe_open
    monkeypatch.setattr(checkpoint, "safe_open", lambda *a, **kw: opened.append(a[0]) or real(*a, **kw))
    Recommender.load(model_dir)
    assert opened == [str(model_dir / "model.safetensors")]


def test_a_directory_without_a_checkpoint_is_refused_naming_it(tmp_path):
    with pytest.raises(CheckpointError, match="model.safetensors") as info:
        load_any(tmp_path)
    assert str(tmp_path) in str(info.value)
