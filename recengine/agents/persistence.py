"""Saving and loading every agent of the registry: one checkpoint file (recengine.checkpoint, kind "agent").

    save_agent(agent, "runs/compare/dqn.safetensors")
    agent = load_agent("runs/compare/dqn.safetensors")     # acts, and keeps training, as the saved one would

A file holds what the agent acts with (its scorer — encoder and catalog head, in the layout of
recengine.serving.agent_checkpoint, so `load_scorer` and serving read it too — or its item scores and factors,
or its random generator) and, for an agent that learns, what it needs to continue training exactly: the optimizer
state, the step counters, the target network and the replay (DQN), the unfinished sessions and the behaviour
head (REINFORCE). Settings travel as JSON metadata. Loading draws no number from torch's global generator (the
modules are built inside ``torch.random.fork_rng``), and every error is a CheckpointError naming the file.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import asdict, is_dataclass

import torch

from recengine.agents.baselines import MatrixFactorizationPolicy, PopularityPolicy, RandomPolicy, SupervisedPolicy
from recengine.agents.config import DQNConfig, EncoderConfig, ReinforceConfig, SlateQConfig
from recengine.agents.dqn import DQNAgent
from recengine.agents.logged_items import LoggedItems
from recengine.agents.policy_base import Policy
from recengine.agents.reinforce import BehaviourHead, ReinforceAgent, SessionReturns
from recengine.agents.scorer import Scorer
from recengine.agents.slateq import SlateQAgent
from recengine.checkpoint import (
    AGENT_KIND,
    CheckpointError,
    json_field,
    optimizer_state,
    optimizer_tensors,
    read,
    require_metadata,
    write,
)
from recengine.nn.persistence import build_scorer, scorer_metadata, scorer_tensors

__all__ = ["save_agent", "load_agent", "agent_from_checkpoint", "AGENT_TYPES"]

AGENT_TYPES = ("random", "popularity", "supervised", "matrix-factorization", "dqn", "reinforce", "slateq")
"""the agent classes a file can hold (metadata field "agent_type"); hybrids are DQN / REINFORCE / SlateQ agents"""


# ------------------------------------------------------------------------------------------ helpers
def _type_of(agent: Policy) -> str:
    for cls, name in (
        (DQNAgent, "dqn"),
        (ReinforceAgent, "reinforce"),
        (SlateQAgent, "slateq"),
        (SupervisedPolicy, "supervised"),
        (MatrixFactorizationPolicy, "matrix-factorization"),
        (PopularityPolicy, "popularity"),
        (RandomPolicy, "random"),
    ):
        if isinstance(agent, cls):
            return name
    raise TypeError(f"agent: no save/load for {type(agent).__name__}; known agent types: {', '.join(AGENT_TYPES)}")


def _scorer_parts(scorer: object) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    if not isinstance(scorer, Scorer):
        raise TypeError(f"agent: its scorer must be a recengine.agents.scorer.Scorer, got {type(scorer).__name__}")
    return scorer_tensors(scorer.encoder, scorer.head), scorer_metadata(scorer.encoder, scorer.head)


def _load_scorer(path: str, tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> Scorer:
    encoder, head = build_scorer(path, tensors, meta)
    return Scorer(encoder, head)


def _prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors named ``<prefix>.*``, the prefix removed."""
    return {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}


def _tensor(path: str, tensors: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    if name not in tensors:
        raise CheckpointError(f"{path}: an agent checkpoint without tensor {name!r}")
    return tensors[name]


def _config(path: str, cls: type, values: object):
    """A config dataclass `cls` from its JSON dict (nested EncoderConfig included)."""
    if not isinstance(values, dict):
        raise CheckpointError(f"{path}: metadata field 'agent': 'config' must be a JSON object")
    try:
        kw = dict(values)
        if isinstance(kw.get("encoder"), dict):
            kw["encoder"] = EncoderConfig(**kw["encoder"])
        return cls(**kw)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: metadata field 'agent': 'config' is not a {cls.__name__} ({exc})") from None


def _load_state(path: str, what: str, load, state) -> None:
    """`load(state)` (a load_state_dict), its errors turned into a CheckpointError naming the file and `what`."""
    try:
        load(state)
    except (KeyError, RuntimeError, ValueError, TypeError, IndexError) as exc:
        raise CheckpointError(f"{path}: the {what} do not match the agent the metadata describes ({exc})") from exc


def _settings(agent: Policy, names: tuple[str, ...]) -> dict:
    """The JSON-ready attributes `names` of `agent`, and its config dataclass (when it has one)."""
    out = {n: getattr(agent, n) for n in names}
    cfg = getattr(agent, "cfg", None)
    if is_dataclass(cfg):
        out["config"] = asdict(cfg)
    return out


def _field(path: str, settings: dict, name: str, kind: type | tuple[type, ...]):
    value = settings.get(name)
    if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
        raise CheckpointError(f"{path}: metadata field 'agent': {name!r} is missing or of the wrong type")
    return value


def _count(path: str, settings: dict, name: str, low: int = 0, high: int | None = None) -> int:
    """Integer setting `name`, in [low, high]: a tampered value is refused here, not when the agent first acts."""
    value = _field(path, settings, name, int)
    if value < low or (high is not None and value > high):
        allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise CheckpointError(f"{path}: metadata field 'agent': {name!r} must be {allowed}, got {value}")
    return value


def _finite(path: str, settings: dict, name: str) -> float:
    value = float(_field(path, settings, name, (int, float)))
    if not math.isfinite(value):
        raise CheckpointError(f"{path}: metadata field 'agent': {name!r} must be finite, got {value}")
    return value


def _float_tensor(path: str, tensors: dict[str, torch.Tensor], name: str, dim: int) -> torch.Tensor:
    """Tensor `name`: `dim`-D float32, every value finite."""
    t = _tensor(path, tensors, name)
    if t.dim() != dim or t.dtype != torch.float32:
        raise CheckpointError(f"{path}: tensor {name!r} must be {dim}-D float32, got {t.dtype} {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise CheckpointError(f"{path}: tensor {name!r} holds values that are not finite")
    return t


# ------------------------------------------------------------------------------------ the replay
def _replay_parts(replay) -> tuple[dict[str, torch.Tensor], str]:
    """The DQN replay's tensors and settings, through its own writer (one format, one validation)."""
    from safetensors import safe_open

    with tempfile.TemporaryDirectory() as tmp:
        file = os.path.join(tmp, "replay.safetensors")
        replay.save(file)
        with safe_open(file, framework="pt") as f:
            return {f"replay.{k}": f.get_tensor(k) for k in f.keys()}, (f.metadata() or {})["recengine.replay"]


def _load_replay(path: str, tensors: dict[str, torch.Tensor], settings: str):
    """The replay `_replay_parts` stored, read back (and checked) by PrioritizedReplay.load."""
    from safetensors.torch import save_file

    from recengine.buffers import PrioritizedReplay

    with tempfile.TemporaryDirectory() as tmp:
        file = os.path.join(tmp, "replay.safetensors")
        save_file(_prefixed(tensors, "replay"), file, metadata={"recengine.replay": settings})
        try:
            return PrioritizedReplay.load(file)
        except ValueError as exc:
            raise CheckpointError(f"{path}: the DQN replay is malformed ({str(exc).replace(file, 'replay')})") from None


# ------------------------------------------------------------------------------ REINFORCE sessions
def _returns_parts(returns: SessionReturns | None) -> tuple[dict[str, torch.Tensor], dict]:
    """The unfinished sessions' steps (stacked: every step has the same users), their starts and the finished
    samples not yet learnt from."""
    if returns is None:
        return {}, {"present": False}
    tensors: dict[str, torch.Tensor] = {}
    if returns.steps:
        for j, name in enumerate(("hist", "slate", "item_clicked", "reward")):
            tensors[f"returns.steps.{name}"] = torch.stack([step[j] for step in returns.steps])
    if returns.start is not None:
        tensors["returns.start"] = returns.start
    if returns.ready:
        for j, name in enumerate(("hist", "slate", "item_return")):
            tensors[f"returns.ready.{name}"] = torch.cat([r[j] for r in returns.ready])
    return tensors, {"present": True, "steps": len(returns.steps), "count": returns.count}


def _load_returns(
    path: str, tensors: dict[str, torch.Tensor], spec: dict, gamma: float, num_items: int, k: int
) -> SessionReturns | None:
    """The unfinished sessions `_returns_parts` stored, checked against each other and the agent: every step of
    the same users, slates of k catalog items, histories of catalog items (or -1), finite rewards, session starts
    within the steps kept, finished samples of one length whose count is the metadata's."""
    present = spec.get("present", False)
    if not isinstance(present, bool):
        raise CheckpointError(f"{path}: metadata field 'agent': 'returns.present' must be true or false")
    if not present:
        return None
    returns = SessionReturns(gamma)
    steps, count = _count(path, spec, "steps", 0), _count(path, spec, "count", 0)
    users = None
    if steps:
        names = ("hist", "slate", "item_clicked", "reward")
        parts = [_tensor(path, tensors, f"returns.steps.{n}") for n in names]
        _returns_tensors(path, "returns.steps", dict(zip(names, parts)), (3, 3, 3, 2), k, num_items)
        if len({p.shape[0] for p in parts}) != 1 or parts[0].shape[0] != steps:
            raise CheckpointError(f"{path}: the REINFORCE session steps disagree in length")
        if len({p.shape[1] for p in parts}) != 1:
            raise CheckpointError(f"{path}: the REINFORCE session steps disagree in the number of users")
        users = parts[0].shape[1]
        returns.steps = [tuple(p[t] for p in parts) for t in range(steps)]
    start = tensors.get("returns.start")
    if start is None and steps:
        raise CheckpointError(f"{path}: an agent checkpoint without tensor 'returns.start' (its open sessions)")
    if start is not None:
        if start.dtype != torch.int64 or start.dim() != 1 or (users is not None and start.shape[0] != users):
            raise CheckpointError(
                f"{path}: tensor 'returns.start' must be ({users if users is not None else 'B'},) int64, "
                f"got {start.dtype} {tuple(start.shape)}"
            )
        if start.numel() and (int(start.min()) < 0 or int(start.max()) > steps):
            raise CheckpointError(f"{path}: tensor 'returns.start' holds session starts outside 0..{steps}")
    returns.start = start
    rows = 0
    if any(name.startswith("returns.ready.") for name in tensors):
        names = ("hist", "slate", "item_return")
        parts = [_tensor(path, tensors, f"returns.ready.{n}") for n in names]
        _returns_tensors(path, "returns.ready", dict(zip(names, parts)), (2, 2, 2), k, num_items)
        if len({p.shape[0] for p in parts}) != 1:
            raise CheckpointError(f"{path}: the REINFORCE finished samples disagree in length")
        rows = parts[0].shape[0]
        returns.ready = [tuple(parts)]
    if count != rows:
        raise CheckpointError(
            f"{path}: metadata field 'agent': 'returns.count' is {count}, the file holds {rows} finished samples"
        )
    returns.count = count
    return returns


def _returns_tensors(
    path: str, prefix: str, parts: dict[str, torch.Tensor], dims: tuple[int, ...], k: int, num_items: int
) -> None:
    """Dtypes, dimensions, slate width, item ids and finite values of the REINFORCE session tensors `parts`."""
    for (name, t), d in zip(parts.items(), dims):
        want = torch.int64 if name in ("hist", "slate") else torch.float32
        if t.dtype != want or t.dim() != d:
            raise CheckpointError(
                f"{path}: tensor '{prefix}.{name}' must be {d}-D {str(want).replace('torch.', '')}, "
                f"got {t.dtype} {tuple(t.shape)}"
            )
        if name in ("slate", "item_clicked", "item_return") and t.shape[-1] != k:
            raise CheckpointError(f"{path}: tensor '{prefix}.{name}' must hold slates of k={k}, got {tuple(t.shape)}")
        if name in ("hist", "slate"):
            _ids_in_catalog(path, f"{prefix}.{name}", t, -1 if name == "hist" else 0, num_items)
        elif not bool(torch.isfinite(t).all()):
            raise CheckpointError(f"{path}: tensor '{prefix}.{name}' holds values that are not finite")


# ----------------------------------------------------------------------------------------- SlateQ
def _slateq_parts(agent: SlateQAgent, tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> dict:
    """SlateQ's tensors into `tensors` and metadata into `meta`; returns its settings."""
    settings = _settings(
        agent, ("num_items", "k", "history_len", "total_steps", "seed", "env_steps", "updates", "transitions")
    )
    scorer_t, scorer_m = _scorer_parts(agent.scorer)
    tensors.update(scorer_t)
    meta.update(scorer_m)
    reference_t, _ = _scorer_parts(agent.reference)  # a copy of the scorer as it started: the same architecture
    tensors.update({f"reference.{k}": v for k, v in reference_t.items()})
    tensors.update({f"values.{k}": v for k, v in agent.values.state_dict().items()})
    tensors.update({f"target_values.{k}": v for k, v in agent.target_values.state_dict().items()})
    tensors["no_click"] = agent.no_click.detach().clone()
    opt_t, meta["optim_groups"] = optimizer_tensors(agent.optimizer)
    tensors.update(opt_t)
    tensors["generator"] = agent.generator.get_state()
    _logged_parts(agent.logged, tensors, settings)
    settings["replay"] = agent.replay is not None
    if agent.replay is not None:
        replay_t, meta["replay"] = _replay_parts(agent.replay)
        tensors.update(replay_t)
    return settings


def _load_slateq(path, tensors, meta, settings) -> Policy:
    cfg = _config(path, SlateQConfig, settings.get("config"))
    num_items = _count(path, settings, "num_items", 1)
    logged = _load_logged(path, tensors, settings, num_items)
    agent = SlateQAgent(
        _load_scorer(path, tensors, meta),
        num_items,
        _count(path, settings, "k", 1, num_items),
        _count(path, settings, "history_len", 1),
        cfg,
        _count(path, settings, "total_steps", 0),
        logged=logged,
        seed=_count(path, settings, "seed", 0),
    )
    # scorer_tensors names a Scorer's weights as its state dict does (encoder.*, head.*)
    _load_state(path, "reference policy weights", agent.reference.load_state_dict, _prefixed(tensors, "reference"))
    _load_state(path, "item value weights", agent.values.load_state_dict, _prefixed(tensors, "values"))
    _load_state(
        path, "target item value weights", agent.target_values.load_state_dict, _prefixed(tensors, "target_values")
    )
    no_click = _float_tensor(path, tensors, "no_click", 0)
    with torch.no_grad():
        agent.no_click.copy_(no_click)
    _load_state(path, "optimizer state", agent.optimizer.load_state_dict, optimizer_state(path, tensors, meta))
    _load_state(path, "generator state", agent.generator.set_state, _tensor(path, tensors, "generator"))
    for name in ("env_steps", "updates", "transitions"):
        setattr(agent, name, _count(path, settings, name, 0))
    if settings.get("replay"):
        require_metadata(path, meta, ("replay",))
        agent.replay = _load_replay(path, tensors, meta["replay"])
    return agent


# ------------------------------------------------------------------------------------------ save
def save_agent(agent: Policy, path: str, *, data_name: str = "") -> None:
    """Write `agent` (any agent the registry builds) to `path` atomically: what it acts with and, when it
    learns, what continues its training. TypeError for an agent of a class this module does not know."""
    agent_type = _type_of(agent)
    tensors: dict[str, torch.Tensor] = {}
    meta: dict[str, str] = {"agent_type": agent_type, "agent": "", "agent_name": agent.name, "dataset": data_name}
    if agent_type == "random":
        settings = _settings(agent, ("num_items", "k"))
        tensors["generator"] = agent.generator.get_state()
    elif agent_type == "popularity":
        settings = _settings(agent, ("k",))
        tensors["bias"] = agent.bias
    elif agent_type == "matrix-factorization":
        settings = _settings(agent, ("k",))
        tensors.update(user_factors=agent.P, item_factors=agent.E, item_bias=agent.bias)
    elif agent_type == "supervised":
        settings = _settings(agent, ("k",))
        scorer_t, scorer_m = _scorer_parts(agent.scorer)
        tensors.update(scorer_t)
        meta.update(scorer_m)
        _logged_parts(agent.logged, tensors, settings)
    elif agent_type == "dqn":
        settings = _settings(
            agent,
            ("num_items", "k", "history_len", "total_steps", "seed", "env_steps", "updates", "transitions"),
        )
        scorer_t, scorer_m = _scorer_parts(agent.scorer)
        tensors.update(scorer_t)
        meta.update(scorer_m)
        tensors.update({f"online.{k}": v for k, v in agent.online.state_dict().items() if not k.startswith("scorer.")})
        tensors.update({f"target.{k}": v for k, v in agent.target.state_dict().items()})
        opt_t, meta["optim_groups"] = optimizer_tensors(agent.optimizer)
        tensors.update(opt_t)
        tensors["generator"] = agent.generator.get_state()
        settings["replay"] = agent.replay is not None
        if agent.replay is not None:
            replay_t, meta["replay"] = _replay_parts(agent.replay)
            tensors.update(replay_t)
    elif agent_type == "slateq":
        settings = _slateq_parts(agent, tensors, meta)
    else:  # reinforce
        settings = _settings(agent, ("num_items", "k", "seed", "env_steps", "updates", "baseline"))
        scorer_t, scorer_m = _scorer_parts(agent.policy)
        tensors.update(scorer_t)
        meta.update(scorer_m)
        opt_t, meta["optim_groups"] = optimizer_tensors(agent.optimizer)
        tensors.update(opt_t)
        settings["behaviour"] = agent.behaviour is not None
        if agent.behaviour is not None:
            tensors.update({f"behaviour.{k}": v for k, v in agent.behaviour.state_dict().items()})
            opt_t, meta["behaviour_optim_groups"] = optimizer_tensors(agent.behaviour_opt, "behaviour_optim")
            tensors.update(opt_t)
        returns_t, settings["returns"] = _returns_parts(agent._returns)
        tensors.update(returns_t)
        if agent.reference is not None:  # the KL anchor: the scorer as the agent received it
            tensors.update({f"reference.{k}": v for k, v in _scorer_parts(agent.reference)[0].items()})
    meta["agent"] = json.dumps(settings)
    write(path, tensors, AGENT_KIND, meta)


# ------------------------------------------------------------------------------------------ load
def load_agent(path: str) -> Policy:
    """The agent `save_agent` wrote to `path`, ready to act and (when it learns) to continue training.

    The file is untrusted: a missing, truncated or foreign file, one of another kind, or metadata and tensors
    that do not describe an agent raise CheckpointError naming the file. Torch's global RNG state is unchanged."""
    path = os.fspath(path)
    tensors, meta = read(path)
    return agent_from_checkpoint(path, tensors, meta)


def agent_from_checkpoint(path: str, tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> Policy:
    """The agent of an agent file from what `recengine.checkpoint.read` returned for `path` (checked as
    `load_agent` checks it; CheckpointError naming the file for a file of another kind)."""
    if meta.get("kind") != AGENT_KIND:
        raise CheckpointError(f"{path}: not an agent checkpoint (kind {meta.get('kind')!r})")
    require_metadata(path, meta, ("agent_type", "agent", "agent_name"))
    agent_type = meta["agent_type"]
    if agent_type not in AGENT_TYPES:
        raise CheckpointError(f"{path}: metadata field 'agent_type' is {agent_type!r}, expected one of {AGENT_TYPES}")
    settings = json_field(path, meta, "agent", dict)
    with torch.random.fork_rng(devices=[]):
        agent = _LOADERS[agent_type](path, tensors, meta, settings)
    agent.name = meta["agent_name"]
    return agent


def _load_random(path, tensors, meta, settings) -> Policy:
    num_items = _count(path, settings, "num_items", 1)
    agent = RandomPolicy(num_items, _count(path, settings, "k", 1, num_items))
    _load_state(path, "generator state", agent.generator.set_state, _tensor(path, tensors, "generator"))
    return agent


def _load_popularity(path, tensors, meta, settings) -> Policy:
    bias = _float_tensor(path, tensors, "bias", 1)
    agent = PopularityPolicy(torch.zeros(bias.numel()), _count(path, settings, "k", 1, bias.numel()))
    agent.bias = bias.contiguous()
    return agent


def _load_matrix_factorization(path, tensors, meta, settings) -> Policy:
    users, items = _float_tensor(path, tensors, "user_factors", 2), _float_tensor(path, tensors, "item_factors", 2)
    bias = _float_tensor(path, tensors, "item_bias", 1)
    if users.shape[1] != items.shape[1] or bias.shape[0] != items.shape[0]:
        raise CheckpointError(
            f"{path}: user_factors {tuple(users.shape)}, item_factors {tuple(items.shape)} and item_bias "
            f"{tuple(bias.shape)} disagree (factor widths equal, one bias per item)"
        )
    return MatrixFactorizationPolicy(users, items, bias, _count(path, settings, "k", 1, items.shape[0]))


def _load_supervised(path, tensors, meta, settings) -> Policy:
    scorer = _load_scorer(path, tensors, meta)
    logged = _load_logged(path, tensors, settings, scorer.head.num_items)
    return SupervisedPolicy(scorer, _count(path, settings, "k", 1), logged=logged)


def _logged_parts(logged: LoggedItems | None, tensors: dict, settings: dict) -> None:
    """Each user's logged items (an agent's exclusion list) into the file's tensors and settings."""
    settings["logged"] = logged is not None
    if logged is not None:
        tensors.update({"logged.offsets": logged.offsets, "logged.items": logged.items})


def _load_logged(path, tensors, settings, num_items: int) -> LoggedItems | None:
    """The logged items _logged_parts wrote (None when the agent had none); CheckpointError when malformed."""
    if not settings.get("logged"):
        return None
    try:
        logged = LoggedItems(_tensor(path, tensors, "logged.offsets"), _tensor(path, tensors, "logged.items"))
    except ValueError as exc:
        raise CheckpointError(f"{path}: the logged items are malformed ({exc})") from None
    if logged.items.numel() and (int(logged.items.min()) < 0 or int(logged.items.max()) >= num_items):
        raise CheckpointError(f"{path}: the logged items hold ids outside [0, {num_items})")
    return logged


def _load_dqn(path, tensors, meta, settings) -> Policy:
    cfg = _config(path, DQNConfig, settings.get("config"))
    num_items = _count(path, settings, "num_items", 1)
    agent = DQNAgent(
        _load_scorer(path, tensors, meta),
        num_items,
        _count(path, settings, "k", 1, num_items),
        _count(path, settings, "history_len", 1),
        cfg,
        _count(path, settings, "total_steps", 0),
        seed=_count(path, settings, "seed", 0),
    )
    online = {f"scorer.{k}": v for k, v in agent.scorer.state_dict().items()}
    online.update(_prefixed(tensors, "online"))
    _load_state(path, "online network weights", agent.online.load_state_dict, online)
    _load_state(path, "target network weights", agent.target.load_state_dict, _prefixed(tensors, "target"))
    _load_state(path, "optimizer state", agent.optimizer.load_state_dict, optimizer_state(path, tensors, meta))
    _load_state(path, "generator state", agent.generator.set_state, _tensor(path, tensors, "generator"))
    for name in ("env_steps", "updates", "transitions"):
        setattr(agent, name, _count(path, settings, name, 0))
    if settings.get("replay"):
        require_metadata(path, meta, ("replay",))
        agent.replay = _load_replay(path, tensors, meta["replay"])
        _check_replay_fits(path, agent, tensors)
    return agent


def _check_replay_fits(path: str, agent: DQNAgent, tensors: dict[str, torch.Tensor]) -> None:
    """The loaded replay must be the one this agent would build (its columns, n-step, gamma, alpha) and hold
    only item ids of its catalog (histories padded with -1): a tampered replay is refused at load, not when
    the agent first learns from it."""
    replay, cfg = agent.replay, agent.cfg
    settings = (replay.fields, replay.n_step, replay.gamma, replay.alpha)
    if settings != (agent.replay_fields(), cfg.n_step, cfg.gamma, cfg.per_alpha):
        raise CheckpointError(
            f"{path}: the DQN replay's columns or settings (fields, n_step, gamma, alpha) {settings} are not the "
            f"agent's {(agent.replay_fields(), cfg.n_step, cfg.gamma, cfg.per_alpha)}"
        )
    for name, low in (("slate", 0), ("hist", -1), ("next_hist", -1)):
        ids = tensors[f"replay.field.{name}"]
        _ids_in_catalog(path, f"replay.field.{name}", ids, low, agent.num_items)
    click = tensors["replay.field.item_click"]
    if not bool(torch.isfinite(click).all()) or not bool(torch.isfinite(tensors["replay.field.reward"]).all()):
        raise CheckpointError(f"{path}: the DQN replay's rewards hold values that are not finite")


def _ids_in_catalog(path: str, name: str, ids: torch.Tensor, low: int, num_items: int) -> None:
    """Tensor `name` must hold item ids in [low, num_items) (low -1: the padding of a history)."""
    if ids.numel() and (int(ids.min()) < low or int(ids.max()) >= num_items):
        raise CheckpointError(
            f"{path}: tensor {name!r} holds item ids outside [{low}, {num_items}): {int(ids.min())}..{int(ids.max())}"
        )


def _load_reinforce(path, tensors, meta, settings) -> Policy:
    cfg = _config(path, ReinforceConfig, settings.get("config"))
    num_items = _count(path, settings, "num_items", 1)
    agent = ReinforceAgent(
        _load_scorer(path, tensors, meta),
        num_items,
        _count(path, settings, "k", 1, num_items),
        cfg,
        seed=_count(path, settings, "seed", 0),
    )
    _load_state(path, "optimizer state", agent.optimizer.load_state_dict, optimizer_state(path, tensors, meta))
    if agent.reference is not None:
        reference = _prefixed(tensors, "reference")
        _load_state(path, "reference policy weights", agent.reference.load_state_dict, reference)
    agent.env_steps, agent.updates = _count(path, settings, "env_steps", 0), _count(path, settings, "updates", 0)
    agent.baseline = _finite(path, settings, "baseline")
    if settings.get("behaviour"):
        state = _prefixed(tensors, "behaviour")
        table = _tensor(path, tensors, "behaviour.table")
        agent.behaviour = BehaviourHead(table.shape[0], table.shape[1])
        _load_state(path, "behaviour head weights", agent.behaviour.load_state_dict, state)
        agent.behaviour_opt = torch.optim.Adam(agent.behaviour.parameters(), lr=cfg.lr * 3)
        opt = optimizer_state(path, tensors, meta, "behaviour_optim")
        _load_state(path, "behaviour optimizer state", agent.behaviour_opt.load_state_dict, opt)
    returns = settings.get("returns") or {}
    if not isinstance(returns, dict):
        raise CheckpointError(f"{path}: metadata field 'agent': 'returns' must be a JSON object")
    agent._returns = _load_returns(path, tensors, returns, cfg.gamma, num_items, agent.k)
    return agent


_LOADERS = {
    "random": _load_random,
    "popularity": _load_popularity,
    "matrix-factorization": _load_matrix_factorization,
    "supervised": _load_supervised,
    "dqn": _load_dqn,
    "reinforce": _load_reinforce,
    "slateq": _load_slateq,
}
"""agent type -> (path, tensors, metadata, settings) -> the agent"""
