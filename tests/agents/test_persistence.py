"""recengine.agents.persistence: every agent of the registry saved and loaded acts the same, continues training
the same, and a bad file gives one clear error naming it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recengine.agents.baselines import MatrixFactorizationPolicy, PopularityPolicy, RandomPolicy, SupervisedPolicy
from recengine.agents.config import DQNConfig, LoopConfig, ReinforceConfig, SlateQConfig
from recengine.agents.dqn import DQNAgent
from recengine.agents.hybrid import make_hybrid
from recengine.agents.logged_items import LoggedItems
from recengine.agents.loop import train
from recengine.agents.persistence import load_agent, save_agent
from recengine.agents.policy_base import Policy
from recengine.agents.registry import registered
from recengine.agents.reinforce import ReinforceAgent, SessionReturns
from recengine.agents.slateq import SlateQAgent
from recengine.checkpoint import CheckpointError, read, write
from recengine.env import VecRecSim
from recengine.nn.sequence_recommender import SequenceRecommender
from recengine.serving.agent_checkpoint import load_scorer
from tests.agents.tiny import K, L, tiny_scorer

ENVS = 16
DQN = DQNConfig(buffer_size=512, batch_size=32, learning_starts=32, epsilon=0.2, n_step=2)
REINFORCE = ReinforceConfig(min_batch=16, batch_size=16)
SLATEQ = SlateQConfig(buffer_size=512, batch_size=32, learning_starts=32, lr=1e-2)


def _build(name: str, sim) -> Policy:
    n = sim.num_items
    if name == "random":
        return RandomPolicy(n, K, seed=3)
    if name == "popularity":
        return PopularityPolicy(np.arange(n) % 7, K)
    if name == "large-model":
        return SupervisedPolicy(tiny_scorer(sim, seed=1), K)
    if name == "large-model-logged":
        logged = LoggedItems(np.arange(sim.num_users + 1) * 3, np.arange(3 * sim.num_users) % n)
        return SupervisedPolicy(tiny_scorer(sim, seed=1), K, logged=logged)
    if name == "mf-bpr":
        g = torch.Generator().manual_seed(0)
        factors = torch.randn(400 + n, 4, generator=g)
        return MatrixFactorizationPolicy(factors[:400], factors[400:], torch.randn(n, generator=g), K)
    if name == "dqn":
        return DQNAgent(tiny_scorer(sim, seed=2), n, K, L, DQN, total_steps=40, seed=5)
    if name == "reinforce":
        return ReinforceAgent(tiny_scorer(sim, seed=2), n, K, REINFORCE, seed=5)
    if name == "hybrid-slateq":
        logged = LoggedItems(np.arange(sim.num_users + 1) * 2, np.arange(2 * sim.num_users) % n)
        return SlateQAgent(tiny_scorer(sim, seed=4), n, K, L, SLATEQ, 40, logged=logged, seed=6)
    pretrained = tiny_scorer(sim, seed=4)
    model = SequenceRecommender(pretrained.encoder, pretrained.head, use_users=False)
    kind = name.removeprefix("hybrid-")
    return make_hybrid(
        model, kind, num_items=n, slate_size=K, history_len=L, dqn=DQN, reinforce=REINFORCE, total_steps=40, seed=6
    )


AGENTS = [
    "random",
    "popularity",
    "large-model",
    "large-model-logged",
    "mf-bpr",
    "dqn",
    "reinforce",
    "hybrid-dqn",
    "hybrid-reinforce",
    "hybrid-slateq",
]
LEARNERS = ["dqn", "reinforce", "hybrid-dqn", "hybrid-reinforce", "hybrid-slateq"]


def _train(agent: Policy, sim, steps: int, seed: int) -> None:
    if agent.learns:
        cfg = LoopConfig(num_envs=ENVS, total_steps=steps, slate_size=K, eval_every=0, seed=seed, progress=False)
        train(agent, VecRecSim(sim, ENVS), cfg)


def _observations(sim, seed: int):
    return VecRecSim(sim, ENVS).reset(seed=seed)[0]


def _state(agent: Policy) -> dict[str, torch.Tensor]:
    """Every learnt tensor of an agent (parameters of its networks and optimizer moments)."""
    out = {}
    for attr in ("online", "target", "policy", "behaviour", "scorer", "reference", "values", "target_values"):
        module = getattr(agent, attr, None)
        if isinstance(module, torch.nn.Module):
            out.update({f"{attr}.{k}": v for k, v in module.state_dict().items()})
    if isinstance(getattr(agent, "no_click", None), torch.Tensor):
        out["no_click"] = agent.no_click.detach()
    opt = getattr(agent, "optimizer", None)
    if opt is not None:
        for idx, st in opt.state_dict()["state"].items():
            out.update({f"optim.{idx}.{k}": torch.as_tensor(v) for k, v in st.items()})
    return out


@pytest.mark.parametrize("name", AGENTS)
def test_loaded_agent_acts_identically(name, sim, tmp_path):
    torch.set_num_threads(1)
    agent = _build(name, sim)
    _train(agent, sim, 6, seed=1)
    save_agent(agent, tmp_path / "agent.safetensors")
    loaded = load_agent(tmp_path / "agent.safetensors")
    assert type(loaded) is type(agent) and loaded.name == agent.name
    for seed, explore in ((11, False), (12, True), (13, True)):
        obs = _observations(sim, seed)
        assert torch.equal(loaded.act(obs, explore=explore), agent.act(obs, explore=explore)), (seed, explore)


@pytest.mark.parametrize("name", LEARNERS)
def test_loaded_agent_continues_training_identically(name, sim, tmp_path):
    torch.set_num_threads(1)
    agent = _build(name, sim)
    _train(agent, sim, 8, seed=1)
    save_agent(agent, tmp_path / "agent.safetensors")
    loaded = load_agent(tmp_path / "agent.safetensors")
    assert agent.num_updates() > 0  # the saved state holds optimizer moments, not a fresh optimizer
    _train(agent, sim, 5, seed=2)
    _train(loaded, sim, 5, seed=2)
    assert loaded.num_updates() == agent.num_updates()
    want, got = _state(agent), _state(loaded)
    assert want.keys() == got.keys()
    for key, value in want.items():
        assert torch.equal(got[key], value), key


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A small comparison setup (synthetic data, its simulator, an untrained large model)."""
    from recengine.report.compare import CompareConfig, prepare
    from recengine.train.sasrec import model_from_data

    cfg = CompareConfig(out=str(tmp_path_factory.mktemp("compare")), dataset="synthetic", progress=False)
    cfg.quick_settings()
    cfg.synthetic_users = 80
    setup, _ = prepare(cfg, log=lambda *a: None)
    setup.pretrained = model_from_data(setup.data, setup.sasrec)
    return setup


@pytest.mark.parametrize("name", AGENTS)
def test_every_registered_agent_round_trips(name, setup, tmp_path):
    agent = registered()[name].build(setup, 0).policy
    save_agent(agent, tmp_path / "agent.safetensors")
    loaded = load_agent(tmp_path / "agent.safetensors")
    from recengine.env.sequential_sim import SequentialVecSim

    obs = SequentialVecSim(setup.simulator, 8).reset(seed=3)[0]
    assert loaded.name == name
    assert torch.equal(loaded.act(obs), agent.act(obs))


def test_reinforce_keeps_unfinished_sessions_and_behaviour_head(sim, tmp_path):
    agent = _build("reinforce", sim)
    g = torch.Generator().manual_seed(0)
    half = sim.num_items // 2  # histories from the first half of the catalog, logged slates from the second
    hist = torch.randint(0, half, (32, L), generator=g)
    slate = half + torch.stack([torch.randperm(half, generator=g)[:K] for _ in range(32)])
    agent.learn_from_logs(hist, slate, torch.rand(32, K, generator=g))
    _train(agent, sim, 3, seed=1)  # sessions last longer than 3 steps: some stay open
    save_agent(agent, tmp_path / "agent.safetensors")
    loaded = load_agent(tmp_path / "agent.safetensors")
    assert isinstance(loaded.returns, SessionReturns) and len(loaded.returns.steps) == len(agent.returns.steps)
    for a, b in zip(agent.returns.steps, loaded.returns.steps):
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    for key, value in agent.behaviour.state_dict().items():
        assert torch.equal(loaded.behaviour.state_dict()[key], value), key


def test_dqn_keeps_replay_counters_and_target(sim, tmp_path):
    agent = _build("dqn", sim)
    _train(agent, sim, 6, seed=1)
    save_agent(agent, tmp_path / "agent.safetensors")
    loaded = load_agent(tmp_path / "agent.safetensors")
    assert (loaded.env_steps, loaded.updates, loaded.transitions) == (agent.env_steps, agent.updates, agent.transitions)
    assert len(loaded.replay) == len(agent.replay) and loaded.replay.position == agent.replay.position
    assert torch.equal(loaded.replay.leaf_priorities(), agent.replay.leaf_priorities())
    assert torch.equal(loaded.generator.get_state(), agent.generator.get_state())


def test_scorer_of_an_agent_file_loads_for_serving(sim, tmp_path):
    agent = _build("dqn", sim)
    save_agent(agent, tmp_path / "agent.safetensors")
    encoder, head, _ = load_scorer(str(tmp_path / "agent.safetensors"))
    for key, value in agent.scorer.encoder.state_dict().items():
        assert torch.equal(encoder.state_dict()[key], value), key
    assert torch.equal(head.bias, agent.scorer.head.bias)


def test_an_agent_file_serves_its_scorers_recommendations(sim, tmp_path):
    from recengine.serving import Recommender

    agent = _build("hybrid-dqn", sim)
    save_agent(agent, tmp_path / "agent.safetensors")
    served = Recommender.load(str(tmp_path / "agent.safetensors"))
    from_scorer = Recommender.from_modules(*load_scorer(str(tmp_path / "agent.safetensors"))[:2])
    histories = [[0, 1, 2], [3], []]
    a, b = served.recommend(histories, k=3), from_scorer.recommend(histories, k=3)
    assert torch.equal(a.items, b.items) and torch.allclose(a.scores, b.scores)


def test_load_leaves_the_global_rng_state_alone(sim, tmp_path):
    save_agent(_build("dqn", sim), tmp_path / "agent.safetensors")
    torch.manual_seed(7)
    before = torch.get_rng_state()
    load_agent(tmp_path / "agent.safetensors")
    assert torch.equal(torch.get_rng_state(), before)


def test_an_unknown_agent_class_cannot_be_saved(tmp_path):
    with pytest.raises(TypeError, match="agent: no save/load for Policy"):
        save_agent(Policy(), tmp_path / "agent.safetensors")


def _truncated(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _foreign(path):
    path.write_bytes(b"not a checkpoint at all")


def _other_kind(path):
    tensors, meta = read(path)
    write(path, tensors, "scorer", {k: v for k, v in meta.items() if k not in ("kind", "format_version")})


def _unknown_type(path):
    tensors, meta = read(path)
    write(path, tensors, "agent", {**meta, "agent_type": "alien"})


def _missing_tensor(path):
    tensors, meta = read(path)
    write(path, {k: v for k, v in tensors.items() if not k.startswith("target.")}, "agent", meta)


def _bad_settings(path):
    tensors, meta = read(path)
    write(path, tensors, "agent", {**meta, "agent": "{not json"})


@pytest.mark.parametrize(
    "corrupt, match",
    [
        (_truncated, "not a readable safetensors checkpoint"),
        (_foreign, "not a readable safetensors checkpoint"),
        (_other_kind, "not an agent checkpoint"),
        (_unknown_type, "'agent_type' is 'alien'"),
        (_missing_tensor, "target network weights do not match"),
        (_bad_settings, "'agent' is not valid JSON"),
    ],
    ids=["truncated", "foreign", "other_kind", "unknown_type", "missing_tensor", "bad_settings"],
)
def test_bad_file_raises_naming_it(corrupt, match, sim, tmp_path):
    path = tmp_path / "agent.safetensors"
    save_agent(_build("dqn", sim), path)
    corrupt(path)
    with pytest.raises(CheckpointError, match=match) as info:
        load_agent(path)
    assert str(path) in str(info.value)


def test_reinforce_with_a_kl_anchor_keeps_its_reference(sim, tmp_path):
    from dataclasses import replace

    agent = ReinforceAgent(tiny_scorer(sim, seed=2), sim.num_items, K, replace(REINFORCE, kl_weight=0.5), seed=5)
    _train(agent, sim, 8, seed=1)
    save_agent(agent, tmp_path / "agent.safetensors")
    loaded = load_agent(tmp_path / "agent.safetensors")
    for (name, want), got in zip(agent.reference.state_dict().items(), loaded.reference.state_dict().values()):
        assert torch.equal(got, want), name
    _train(agent, sim, 5, seed=2)
    _train(loaded, sim, 5, seed=2)
    for key, value in _state(agent).items():
        assert torch.equal(_state(loaded)[key], value), key
