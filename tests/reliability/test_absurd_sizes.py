"""A checkpoint whose metadata claims absurd sizes (a catalog of 2**40 items, a width of 2**40) is refused with a
CheckpointError naming the file and the field, before any model is built on a real device (nothing the claim
asks for is allocated)."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest
import torch
from safetensors.torch import save_file

import recengine.nn.persistence as persistence
from recengine import checkpoint
from recengine.agents.scorer import Scorer
from recengine.data import make_synthetic
from recengine.serving.agent_checkpoint import load_scorer, save_scorer
from recengine.train import SASRecConfig, model_from_data, sasrec_checkpoint

CFG = SASRecConfig(dim=8, max_len=4, num_layers=1, num_heads=2, user_features=True, feature_dim=4)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, tuple[dict, dict]]:
    """{"model": (tensors, metadata), "scorer": (tensors, metadata)} of a small model file and scorer file."""
    torch.manual_seed(0)
    model = model_from_data(make_synthetic(20, 12, seed=0), CFG)
    d = tmp_path_factory.mktemp("sizes")
    sasrec_checkpoint.save_model(str(d / "m"), model, CFG, "synthetic")
    save_scorer(str(d / "s"), Scorer(model.encoder, model.head))
    return {"model": checkpoint.read(str(d / "m")), "scorer": checkpoint.read(str(d / "s"))}


@pytest.fixture
def real_builds(monkeypatch) -> list[str]:
    """The devices models were built on while the test ran (the meta device allocates nothing)."""
    devices: list[str] = []
    build = persistence.encoder_from_config

    def recording(*args, **kwargs):
        devices.append(str(torch.get_default_device()))
        return build(*args, **kwargs)

    monkeypatch.setattr(persistence, "encoder_from_config", recording)
    return devices


def _field(meta: dict, field: str, **change) -> None:
    meta[field] = json.dumps({**json.loads(meta[field]), **change})


HUGE = 2**40
MODEL_CLAIMS = [
    ("num-items", "model", {"num_items": HUGE}, "num_items"),
    ("num-items-past-the-file", "model", {"num_items": 2**30}, "num_items"),
    ("item-table-rows", "model", {"item_feature_tables": [["genre", HUGE]]}, "item_feature_tables"),
    ("user-table-rows", "model", {"user_feature_tables": [["user", HUGE]]}, "user_feature_tables"),
    ("dim", "config", {"dim": HUGE}, "dim"),
    ("max-len", "config", {"max_len": HUGE}, "max_len"),
    ("layers", "config", {"num_layers": HUGE}, "num_layers"),
    ("feature-dim", "config", {"feature_dim": HUGE}, "feature_dim"),
]
SCORER_CLAIMS = [
    ("num-items", {"num_items": HUGE}, "num_items"),
    ("num-items-past-the-file", {"num_items": 2**30}, "num_items"),
    ("dim", {"dim": HUGE}, "dim"),
    ("max-len", {"max_len": HUGE}, "max_len"),
    ("max-len-past-the-file", {"max_len": 2**24}, "max_len"),
    ("item-table-rows", {"item_feature_tables": [["genre", HUGE]]}, "item_feature_tables"),
]


@pytest.mark.parametrize("field, change, name", [pytest.param(*c[1:], id=c[0]) for c in MODEL_CLAIMS])
def test_a_model_file_claiming_absurd_sizes_is_refused_naming_the_field(
    files, tmp_path, real_builds, field, change, name
):
    tensors, meta = dict(files["model"][0]), dict(files["model"][1])
    if field == "config":
        meta["config"] = json.dumps({**asdict(CFG), **change})
    else:
        _field(meta, field, **change)
    path = str(tmp_path / "m.safetensors")
    save_file(tensors, path, metadata=meta)
    with pytest.raises(checkpoint.CheckpointError) as info:
        sasrec_checkpoint.load_model(path)
    assert path in str(info.value) and repr(field) in str(info.value) and name in str(info.value)
    assert "cpu" not in real_builds


@pytest.mark.parametrize("change, name", [pytest.param(*c[1:], id=c[0]) for c in SCORER_CLAIMS])
def test_a_scorer_file_claiming_absurd_sizes_is_refused_naming_the_field(files, tmp_path, real_builds, change, name):
    tensors, meta = dict(files["scorer"][0]), dict(files["scorer"][1])
    _field(meta, "encoder", **change)
    path = str(tmp_path / "s.safetensors")
    save_file(tensors, path, metadata=meta)
    with pytest.raises(checkpoint.CheckpointError) as info:
        load_scorer(path)
    assert path in str(info.value) and "'encoder'" in str(info.value) and name in str(info.value)
    assert "cpu" not in real_builds


def test_a_scorer_file_whose_weights_do_not_fit_is_refused_before_a_real_build(files, tmp_path, real_builds):
    tensors, meta = dict(files["scorer"][0]), dict(files["scorer"][1])
    tensors["encoder.item_embedding"] = torch.zeros(12, 7)
    path = str(tmp_path / "s.safetensors")
    save_file(tensors, path, metadata=meta)
    with pytest.raises(checkpoint.CheckpointError, match="item_embedding"):
        load_scorer(path)
    assert "cpu" not in real_builds


def test_sound_files_still_load(files, tmp_path):
    for kind, load in (("model", sasrec_checkpoint.load_model), ("scorer", load_scorer)):
        path = str(tmp_path / f"{kind}.safetensors")
        save_file(*files[kind][:1], path, metadata=files[kind][1])
        assert load(path) is not None


def test_size_field_names_the_field_and_the_limit():
    with pytest.raises(
        checkpoint.CheckpointError, match=r"f: metadata field 'model': 'num_items' must be an int in 1\.\."
    ):
        checkpoint.size_field("f", "model", "num_items", 2**40)
    assert checkpoint.size_field("f", "model", "num_items", 12) == 12
