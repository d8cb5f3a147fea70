"""Tampered, truncated and foreign checkpoint files: one CheckpointError naming the file, the files untouched."""

from __future__ import annotations

import json
import os
import types
from dataclasses import asdict

import pytest
import torch
from safetensors.torch import save_file

from recengine import checkpoint
from recengine.data import make_synthetic
from recengine.train import SASRecConfig, model_from_data, sasrec_checkpoint
from tests.reliability.cases import cut_file, files_digest, raw_file

CFG = SASRecConfig(dim=8, max_len=4, num_layers=1, num_heads=2, user_features=True, feature_dim=4)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return model_from_data(make_synthetic(20, 12, seed=0), CFG)


@pytest.fixture(scope="module")
def saved(model, tmp_path_factory) -> dict[str, tuple[dict, dict]]:
    """{kind: (tensors, metadata)} of a model file and a training file."""
    d = tmp_path_factory.mktemp("ckpt")
    sasrec_checkpoint.save_model(str(d / "m"), model, CFG, "synthetic")
    opt = torch.optim.AdamW(model.parameters())
    model.loss(torch.tensor([[1, 2, 3, -1]]), torch.tensor([[2, 3, 4, -1]]), torch.tensor([0])).backward()
    opt.step()
    sasrec_checkpoint.save_training_state(
        str(d / "t"),
        model,
        CFG,
        "synthetic",
        best={k: v.clone() for k, v in model.state_dict().items()},
        optimizer=opt,
        trainer={
            "epoch": 1,
            "history": [],
            "best_epoch": 1,
            "best_valid": {},
            "best_ndcg": 0.1,
            "since_best": 0,
            "train_seconds": 1.0,
            "stopped": "",
        },
    )
    return {"model": checkpoint.read(str(d / "m")), "training": checkpoint.read(str(d / "t"))}


def _config(**change):
    return lambda t, m: m.__setitem__("config", json.dumps({**asdict(CFG), **change}))


def _spec(**change):
    return lambda t, m: m.__setitem__("model", json.dumps({**json.loads(m["model"]), **change}))


def _meta(key, value):
    return lambda t, m: m.__setitem__(key, value) if value is not None else m.pop(key)


def _tensor(key, value):
    return lambda t, m: t.__setitem__(key, value) if value is not None else t.pop(key)


def _edit(key, index, value):
    def apply(t, m):
        t[key] = t[key].clone()
        t[key][index] = value

    return apply


MODEL_TAMPERING = [
    ("config-not-json", _meta("config", "{dim: 8")),
    ("config-list", _meta("config", "[8]")),
    ("config-missing", _meta("config", None)),
    ("config-dim-zero", _config(dim=0)),
    ("config-dim-str", _config(dim="8")),
    ("config-heads", _config(num_heads=3)),
    ("config-dropout", _config(dropout=2.0)),
    ("config-other-dim", _config(dim=16)),
    ("config-max-len", _config(max_len=5)),
    ("config-layers", _config(num_layers=2)),
    ("model-not-json", _meta("model", "{")),
    ("model-missing", _meta("model", None)),
    ("model-list", _meta("model", "[]")),
    ("num-items-zero", _spec(num_items=0)),
    ("num-items-str", _spec(num_items="12")),
    ("num-items-huge", _spec(num_items=2**40)),
    ("num-items-other", _spec(num_items=13)),
    ("item-tables-str", _spec(item_feature_tables="genre")),
    ("item-tables-rows-zero", _spec(item_feature_tables=[["genre", 0]])),
    ("item-tables-dropped", _spec(item_feature_tables=[])),
    ("user-tables-dropped", _spec(user_feature_tables=[])),
    ("kind-unknown", _meta("kind", "optimizer")),
    ("version-newer", _meta("format_version", "99")),
    ("version-not-number", _meta("format_version", "one")),
    ("tensor-extra", _tensor("encoder.extra", torch.zeros(2))),
    ("tensor-missing", _tensor("encoder.item_embedding", None)),
    ("tensor-missing-feature-ids", _tensor("encoder.item_feature_ids", None)),
    ("tensor-wrong-shape", _tensor("encoder.item_embedding", torch.zeros(12, 9))),
    ("tensor-wrong-dtype", _tensor("encoder.item_embedding", torch.zeros(12, 8, dtype=torch.float64))),
    ("tensor-head-bias-shape", _tensor("head.bias", torch.zeros(13))),
    ("feature-id-outside-its-table", _edit("encoder.item_feature_ids", 0, 10**6)),
    ("feature-id-negative", _edit("encoder.item_feature_ids", 0, -1)),
    ("feature-offsets-fall", _edit("encoder.item_feature_offsets", 3, 0)),
    ("feature-offsets-short-of-the-ids", _edit("encoder.item_feature_offsets", -1, 1)),
    ("user-feature-id-outside-its-table", _edit("encoder.user_feature_ids", (0, 0), 10**6)),
]
TRAINING_TAMPERING = [
    ("rng-missing", _tensor("rng.torch", None)),
    ("rng-float", _tensor("rng.torch", torch.zeros(8))),
    ("optim-key", _tensor("optim.x.exp_avg", torch.zeros(2))),
    ("optim-groups-not-json", _meta("optim_groups", "[{")),
    ("optim-groups-dict", _meta("optim_groups", "{}")),
    ("optim-groups-no-params", _meta("optim_groups", '[{"lr": 1}]')),
    ("optim-groups-missing", _meta("optim_groups", None)),
    ("trainer-not-json", _meta("trainer", "epoch")),
    ("trainer-list", _meta("trainer", "[]")),
    ("trainer-epoch-str", _meta("trainer", '{"epoch": "1"}')),
    ("trainer-history-dict", _meta("trainer", '{"history": {}}')),
    ("trainer-missing", _meta("trainer", None)),
    ("config-lr-nan", _config(lr=float("nan"))),
]


def _write_tampered(saved, kind, change, path):
    tensors, meta = saved[kind]
    tensors, meta = dict(tensors), dict(meta)
    change(tensors, meta)
    save_file(tensors, path, metadata=meta)


def _check_refused(load, path, directory):
    before = files_digest(directory)
    with pytest.raises(checkpoint.CheckpointError) as info:
        load(path)
    assert path in str(info.value)
    assert files_digest(directory) == before


@pytest.mark.parametrize("change", [pytest.param(c, id=i) for i, c in MODEL_TAMPERING])
def test_a_tampered_model_file_is_refused_naming_it(saved, tmp_path, change):
    path = str(tmp_path / "m.safetensors")
    _write_tampered(saved, "model", change, path)
    _check_refused(sasrec_checkpoint.load_model, path, str(tmp_path))


@pytest.mark.parametrize("change", [pytest.param(c, id=i) for i, c in TRAINING_TAMPERING])
def test_a_tampered_training_file_is_refused_naming_it(saved, tmp_path, change):
    path = str(tmp_path / "t.safetensors")
    _write_tampered(saved, "training", change, path)
    _check_refused(sasrec_checkpoint.load_training_state, path, str(tmp_path))


BROKEN = [
    ("missing", lambda path, good: None),
    ("directory", lambda path, good: os.mkdir(path)),
    ("empty", raw_file(b"")),
    ("text", raw_file(b"hello, world")),
    ("zeros", raw_file(bytes(200))),
    ("pickle", raw_file(b"\x80\x04\x95\x00")),
    ("truncated-8", cut_file(8)),
    ("truncated-40", cut_file(40)),
    ("truncated-half", cut_file(-2000)),
    ("truncated-1", cut_file(-1)),
    ("foreign", lambda path, good: save_file({"x": torch.zeros(3)}, path)),
]


@pytest.mark.parametrize(
    "load",
    [sasrec_checkpoint.load_model, sasrec_checkpoint.load_training_state],
    ids=["load_model", "load_training_state"],
)
@pytest.mark.parametrize("make", [pytest.param(m, id=i) for i, m in BROKEN])
def test_a_broken_file_is_refused_naming_it(saved, tmp_path, model, load, make):
    good_path = str(tmp_path / "good")
    sasrec_checkpoint.save_model(good_path, model, CFG)
    with open(good_path, "rb") as f:
        good = f.read()
    os.remove(good_path)
    path = str(tmp_path / "bad.safetensors")
    make(path, good)
    _check_refused(load, path, str(tmp_path))


# ------------------------------------------------------------------------------------------ data files
def test_a_movielens_file_that_is_not_text_is_refused_naming_it(tmp_path):
    from recengine.data.movielens import ATOMIC_FILES, MovieLensFormatError, load_movielens

    for name in ATOMIC_FILES:
        (tmp_path / name).write_bytes(b"\xff\xfe\xfa not text")
    with pytest.raises(MovieLensFormatError, match="not utf-8 text") as info:
        load_movielens(root=str(tmp_path), download=False)
    assert str(tmp_path) in str(info.value)


def test_an_open_bandit_file_that_is_not_text_is_refused_naming_it(tmp_path):
    from recengine.data.open_bandit import OpenBanditFormatError, load_bts_prior

    (tmp_path / "prior_bts.yaml").write_bytes(b"\xff\xfe\xfa")
    with pytest.raises(OpenBanditFormatError, match="not UTF-8 text") as info:
        load_bts_prior(root=str(tmp_path), download=False)
    assert "prior_bts.yaml" in str(info.value)


# ------------------------------------------------------------------------------------------ agent files
def _agent_files(directory) -> dict[str, tuple[dict, dict]]:
    """{agent type: (tensors, metadata)} of a random, a popularity and an MF agent file, and a DQN's and a
    REINFORCE agent's over a tiny scorer."""
    from recengine.agents.baselines import MatrixFactorizationPolicy, PopularityPolicy, RandomPolicy
    from recengine.agents.config import DQNConfig, ReinforceConfig
    from recengine.agents.dqn import DQNAgent
    from recengine.agents.persistence import save_agent
    from recengine.agents.reinforce import ReinforceAgent
    from tests.agents.tiny import K, L, tiny_scorer

    n = 12
    catalog = types.SimpleNamespace(num_items=n)
    g = torch.Generator().manual_seed(0)
    dqn = DQNConfig(buffer_size=64, batch_size=8, learning_starts=8)
    agents = {
        "random": RandomPolicy(n, 3, seed=0),
        "popularity": PopularityPolicy(torch.arange(n) % 5, 3),
        "matrix-factorization": MatrixFactorizationPolicy(
            torch.randn(5, 4, generator=g), torch.randn(n, 4, generator=g), torch.randn(n, generator=g), 3
        ),
        "dqn": DQNAgent(tiny_scorer(catalog, seed=2), n, K, L, dqn, total_steps=10, seed=5),
        "reinforce": ReinforceAgent(tiny_scorer(catalog, seed=2), n, K, ReinforceConfig(min_batch=8), seed=5),
    }
    # and a DQN and a REINFORCE agent that have stepped: a replay, open sessions and finished samples to tamper
    from recengine.agents.config import LoopConfig
    from recengine.agents.loop import train
    from recengine.env import SimConfig, VecRecSim, synthetic_user_model

    config = SimConfig(slate_size=K, history_len=L, max_steps=3)
    sim = synthetic_user_model(num_users=30, num_items=n, num_genres=3, dim=4, history_len=L, config=config, seed=0)
    stepped = {
        "dqn-stepped": DQNAgent(
            tiny_scorer(catalog, seed=2), n, K, L, DQNConfig(buffer_size=64, batch_size=8, n_step=2), 10, seed=5
        ),
        "reinforce-stepped": ReinforceAgent(
            tiny_scorer(catalog, seed=2), n, K, ReinforceConfig(min_batch=64, batch_size=64), seed=5
        ),
    }
    for agent in stepped.values():
        loop = LoopConfig(num_envs=4, total_steps=5, slate_size=K, eval_every=0, seed=1, progress=False)
        train(agent, VecRecSim(sim, 4), loop)
    agents.update(stepped)
    out = {}
    for name, agent in agents.items():
        path = str(directory / f"{name}.safetensors")
        save_agent(agent, path)
        out[name] = checkpoint.read(path)
    return out


@pytest.fixture(scope="module")
def agent_files(tmp_path_factory):
    return _agent_files(tmp_path_factory.mktemp("agents"))


def _settings(**change):
    return lambda t, m: m.__setitem__("agent", json.dumps({**json.loads(m["agent"]), **change}))


def _agent_config(**change):
    def apply(t, m):
        settings = json.loads(m["agent"])
        settings["config"] = {**settings["config"], **change}
        m["agent"] = json.dumps(settings)

    return apply


def _replay_meta(change):
    def apply(t, m):
        replay = json.loads(m["replay"])
        change(replay)
        m["replay"] = json.dumps(replay)

    return apply


def _returns(**change):
    def apply(t, m):
        settings = json.loads(m["agent"])
        settings["returns"] = {**settings["returns"], **change}
        m["agent"] = json.dumps(settings)

    return apply


def _tensor_from(key, make):
    return lambda t, m: t.__setitem__(key, make(t[key])) if make is not None else t.pop(key)


AGENT_TAMPERING = [
    # (id, agent type, change, words the error must hold)
    ("random-k-negative", "random", _settings(k=-1), "'k' must be"),
    ("random-k-above-items", "random", _settings(k=99), "'k' must be"),
    ("random-items-zero", "random", _settings(num_items=0), "'num_items' must be"),
    ("popularity-bias-nan", "popularity", _tensor("bias", torch.full((12,), float("nan"))), "not finite"),
    ("popularity-k-zero", "popularity", _settings(k=0), "'k' must be"),
    ("mf-widths-differ", "matrix-factorization", _tensor("user_factors", torch.zeros(5, 3)), "disagree"),
    ("mf-bias-length", "matrix-factorization", _tensor("item_bias", torch.zeros(3)), "disagree"),
    ("mf-factors-inf", "matrix-factorization", _tensor("item_factors", torch.full((12, 4), float("inf"))), "finite"),
    ("mf-factors-1d", "matrix-factorization", _tensor("item_factors", torch.zeros(12)), "2-D"),
    ("dqn-history-negative", "dqn", _settings(history_len=-3), "'history_len' must be"),
    ("dqn-steps-negative", "dqn", _settings(env_steps=-1), "'env_steps' must be"),
    ("dqn-gamma-five", "dqn", _agent_config(gamma=5.0), "gamma must be"),
    ("dqn-batch-zero", "dqn", _agent_config(batch_size=0), "batch_size must be"),
    ("reinforce-baseline-nan", "reinforce", _settings(baseline=float("nan")), "'baseline' must be finite"),
    ("reinforce-lr-zero", "reinforce", _agent_config(lr=0.0), "lr must be"),
    # the DQN's replay, inside the agent file
    ("dqn-replay-capacity-zero", "dqn-stepped", _replay_meta(lambda r: r.update(capacity=0)), "'capacity'"),
    ("dqn-replay-next-unhashable", "dqn-stepped", _replay_meta(lambda r: r.update(next_fields=[["x"]])), "next_fields"),
    ("dqn-replay-reward-f64", "dqn-stepped", _tensor_from("replay.field.reward", lambda x: x.double()), "dtype"),
    ("dqn-replay-gamma-other", "dqn-stepped", _replay_meta(lambda r: r.update(gamma=0.5)), "not the agent's"),
    (
        "dqn-replay-slate-width",
        "dqn-stepped",
        _replay_meta(lambda r: r["fields"]["slate"][0].__setitem__(0, 99)),
        "replay",
    ),
    ("dqn-replay-slate-outside", "dqn-stepped", _tensor_from("replay.field.slate", lambda x: x + 100), "outside"),
    ("dqn-replay-hist-below-pad", "dqn-stepped", _tensor_from("replay.field.hist", lambda x: x - 100), "outside"),
    (
        "dqn-replay-click-nan",
        "dqn-stepped",
        _tensor_from("replay.field.item_click", lambda x: torch.full_like(x, float("nan"))),
        "not finite",
    ),
    ("dqn-replay-metadata-missing", "dqn-stepped", _meta("replay", None), "replay"),
    # REINFORCE's unfinished sessions and finished samples
    ("reinforce-count-negative", "reinforce-stepped", _returns(count=-1), "'count' must be"),
    ("reinforce-count-other", "reinforce-stepped", _returns(count=10**6), "finished samples"),
    ("reinforce-steps-more", "reinforce-stepped", _returns(steps=99), "disagree in length"),
    ("reinforce-steps-str", "reinforce-stepped", _returns(steps="2"), "'steps'"),
    ("reinforce-present-str", "reinforce-stepped", _returns(present="yes"), "present"),
    (
        "reinforce-hist-float",
        "reinforce-stepped",
        _tensor_from("returns.steps.hist", lambda x: x.float()),
        "returns.steps.hist",
    ),
    (
        "reinforce-slate-fewer-users",
        "reinforce-stepped",
        _tensor_from("returns.steps.slate", lambda x: x[:, :2].contiguous()),
        "number of users",
    ),
    (
        "reinforce-slate-outside",
        "reinforce-stepped",
        _tensor_from("returns.steps.slate", lambda x: x + 100),
        "outside",
    ),
    (
        "reinforce-reward-nan",
        "reinforce-stepped",
        _tensor_from("returns.steps.reward", lambda x: torch.full_like(x, float("nan"))),
        "not finite",
    ),
    ("reinforce-start-missing", "reinforce-stepped", _tensor_from("returns.start", None), "returns.start"),
    ("reinforce-start-beyond", "reinforce-stepped", _tensor_from("returns.start", lambda x: x + 99), "returns.start"),
    (
        "reinforce-ready-short",
        "reinforce-stepped",
        _tensor_from("returns.ready.slate", lambda x: x[:-1].contiguous()),
        "disagree in length",
    ),
    (
        "reinforce-ready-return-inf",
        "reinforce-stepped",
        _tensor_from("returns.ready.item_return", lambda x: torch.full_like(x, float("inf"))),
        "not finite",
    ),
]


@pytest.mark.parametrize("kind, change, words", [pytest.param(k, c, w, id=i) for i, k, c, w in AGENT_TAMPERING])
def test_a_tampered_agent_file_is_refused_at_load_naming_it(agent_files, tmp_path, kind, change, words):
    from recengine.agents.persistence import load_agent

    path = str(tmp_path / "a.safetensors")
    _write_tampered(agent_files, kind, change, path)
    before = files_digest(str(tmp_path))
    with pytest.raises(checkpoint.CheckpointError) as info:
        load_agent(path)
    assert path in str(info.value) and words in str(info.value), str(info.value)
    assert files_digest(str(tmp_path)) == before


# ------------------------------------------------------------------------------------------ sharded checkpoints
def _sharded(directory) -> str:
    from recengine.distributed import ShardedEmbeddingTables
    from recengine.distributed import checkpoint as sharded
    from recengine.nn.embedding_tables import TableSpec
    from recengine.optim import RowwiseAdagrad

    tables = ShardedEmbeddingTables(
        [TableSpec("a", 6, 2), TableSpec("b", 3, 2)], optimizer=RowwiseAdagrad(lr=0.1), seed=1
    )
    path = str(directory / "ckpt")
    sharded.save(tables, path)
    return path


def _manifest_change(change):
    def apply(directory):
        path = os.path.join(directory, "manifest.json")
        with open(path) as f:
            manifest = json.load(f)
        change(manifest)
        with open(path, "w") as f:
            json.dump(manifest, f)
        return "manifest.json"

    return apply


def _shard_bytes(change):
    def apply(directory):
        with open(os.path.join(directory, "manifest.json")) as f:
            relative = json.load(f)["files"][0]["file"]
        path = os.path.join(directory, relative)
        with open(path, "rb") as f:
            data = f.read()
        data = change(data)
        if data is None:
            os.remove(path)
        else:
            with open(path, "wb") as f:
                f.write(data)
        return relative

    return apply


def _shard_tensor(change):
    """Rewrite the first shard file with tensor 'weights' replaced by change(weights)."""

    def apply(directory):
        from safetensors import safe_open

        with open(os.path.join(directory, "manifest.json")) as f:
            relative = json.load(f)["files"][0]["file"]
        path = os.path.join(directory, relative)
        with safe_open(path, framework="pt") as f:
            tensors, meta = {k: f.get_tensor(k) for k in f.keys()}, f.metadata()
        tensors["weights"] = change(tensors["weights"])
        save_file(tensors, path, metadata=meta)
        return relative

    return apply


def _more_rows(manifest):
    manifest["specs"][0]["num_rows"] += 4


def _shard_claims_more(manifest):
    manifest["specs"][0]["num_rows"] += 4
    manifest["files"][0]["shards"][0]["row_end"] += 4


SHARDED_BAD = [
    # (id, change, words the error must hold besides the file it names)
    ("manifest-more-rows-than-shards", _manifest_change(_more_rows), "no shard holds row 6"),
    ("shard-claims-rows-its-file-lacks", _manifest_change(_shard_claims_more), "has 9 rows"),
    ("shard-outside-its-table", _manifest_change(lambda m: m["files"][0]["shards"][0].update(row_end=99)), "shard"),
    ("shard-unknown-table", _manifest_change(lambda m: m["files"][0]["shards"][0].update(table="zz")), "shard"),
    ("shard-file-escapes", _manifest_change(lambda m: m["files"][0].update(file="../../etc/x")), "inside"),
    ("specs-rows-negative", _manifest_change(lambda m: m["specs"][0].update(num_rows=-1)), "specs[0]"),
    ("specs-not-list", _manifest_change(lambda m: m.update(specs={"a": 1})), "'specs'"),
    ("files-empty", _manifest_change(lambda m: m.update(files=[])), "'files'"),
    ("shard-truncated", _shard_bytes(lambda b: b[: len(b) // 2]), "safetensors"),
    ("shard-not-safetensors", _shard_bytes(lambda b: b"not a safetensors file at all"), "safetensors"),
    ("shard-missing", _shard_bytes(lambda b: None), "missing"),
    ("shard-rows-wider", _shard_tensor(lambda w: torch.zeros(w.shape[0], w.shape[1] + 1)), "rows of shape"),
    ("shard-float64", _shard_tensor(lambda w: w.double()), "F64"),
    ("shard-nan", _shard_tensor(lambda w: torch.full_like(w, float("nan"))), "not finite"),
]


@pytest.mark.parametrize("change, words", [pytest.param(c, w, id=i) for i, c, w in SHARDED_BAD])
def test_a_bad_sharded_checkpoint_is_refused_naming_the_file(tmp_path, change, words):
    """Never rows that no file filled: every row of every table is accounted for, and the error names the real
    file (the manifest, or the shard at fault)."""
    from recengine.distributed import checkpoint as sharded

    directory = _sharded(tmp_path)
    change(directory)
    with pytest.raises((ValueError, FileNotFoundError)) as info:
        sharded.read_full_state(directory)
    message = str(info.value)
    assert message.startswith(directory) and (".safetensors" in message or "manifest.json" in message), message
    assert words in message, message
