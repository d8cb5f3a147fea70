"""The agent registry: a new agent is one entry, and the comparison runs it like the built-in ones."""

import json

import numpy as np
import pytest
import torch

from recengine.agents.baselines import PopularityPolicy
from recengine.agents.entry import AgentEntry, BuiltAgent
from recengine.agents.policy_base import Policy
from recengine.agents.registry import lookup, register, registered, unregister
from recengine.report.compare import CompareConfig, run_compare


class CountingPolicy(Policy):
    """A toy learner: the lowest-numbered k unseen items, one update per step it observes."""

    name = "toy"
    learns = True

    def __init__(self, num_items: int, k: int):
        self.ranker = PopularityPolicy(np.arange(num_items)[::-1].copy(), k)
        self.updates, self.pending = 0, 0

    def act(self, obs, explore: bool = False) -> torch.Tensor:
        return self.ranker.act(obs)

    def observe(self, step) -> None:
        self.pending += 1

    def update(self) -> dict[str, float]:
        self.updates, self.pending = self.updates + self.pending, 0
        return {"loss": 0.0}

    def num_updates(self) -> int:
        return self.updates


@pytest.fixture
def toy_entry():
    def build(setup, seed):
        return BuiltAgent(CountingPolicy(setup.num_items, setup.slate_size))

    entry = register(AgentEntry("toy", build))
    yield entry
    unregister("toy")


def test_builtin_agents_in_report_order():
    assert list(registered())[:10] == [
        "random",
        "popularity",
        "large-model",
        "large-model-logged",
        "dqn",
        "reinforce",
        "hybrid-dqn",
        "hybrid-reinforce",
        "hybrid-slateq",
        "mf-bpr",
    ]


def test_a_registered_agent_runs_through_compare(toy_entry, tmp_path):
    cfg = CompareConfig(
        out=str(tmp_path), dataset="synthetic", agents=("popularity", "toy"), ope_targets=(), progress=False
    ).quick_settings()
    cfg.rl_steps["toy"] = 4
    results = run_compare(cfg, log=lambda *a: None)
    toy = results["agents"]["toy"]
    assert toy["updates"] == 4 and len(toy["curve"]) >= 2
    assert "popularity" in toy["paired"]
    assert "toy" in json.loads((tmp_path / "results.json").read_text())["agents"]


def test_lookup_after_unregister_names_the_agent(toy_entry):
    assert lookup("toy") is toy_entry
    unregister("toy")
    with pytest.raises(ValueError, match="toy"):
        lookup("toy")


def test_a_builtin_name_cannot_be_taken():
    with pytest.raises(ValueError, match="built-in"):
        register(AgentEntry("dqn", lambda setup, seed: None))
