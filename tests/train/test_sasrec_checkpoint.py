"""recengine.train.sasrec_checkpoint: the large model round-trips, older files still load, every error names the
file."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest
import torch
from safetensors.torch import save_file

from recengine import checkpoint
from recengine.data import make_synthetic
from recengine.train import SASRecConfig, model_from_data, sasrec_checkpoint

CFG = SASRecConfig(dim=16, max_len=8, num_layers=1, num_heads=2, user_features=True)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return model_from_data(make_synthetic(30, 20, seed=0), CFG).eval()


def scores(model) -> torch.Tensor:
    hist = torch.tensor([[1, 2, 3, -1], [4, -1, -1, -1]])
    return model.user_states(hist, torch.tensor([0, 1])) @ model.encoder.item_embeddings().T


def test_model_round_trip(model, tmp_path):
    path = str(tmp_path / "m.safetensors")
    sasrec_checkpoint.save_model(path, model, CFG, "synthetic")
    loaded, cfg = sasrec_checkpoint.load_model(path)
    assert cfg == CFG
    assert torch.equal(scores(loaded.eval()), scores(model))


def test_written_files_carry_the_format_version(model, tmp_path):
    path = str(tmp_path / "m.safetensors")
    sasrec_checkpoint.save_model(path, model, CFG)
    _, meta = checkpoint.read(path)
    assert meta["format_version"] == str(checkpoint.FORMAT_VERSION) and meta["kind"] == "model"


def test_a_file_of_the_first_layout_still_loads(model, tmp_path):
    """The files the earlier trainer wrote: the same tensors and metadata, without format_version / kind."""
    path = str(tmp_path / "old.safetensors")
    meta = sasrec_checkpoint.model_metadata(model, CFG, "synthetic")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path, metadata=meta)
    loaded, cfg = sasrec_checkpoint.load_model(path)
    assert cfg == CFG and torch.equal(scores(loaded.eval()), scores(model))


def test_best_weights_of_a_training_checkpoint_load_as_a_model(model, tmp_path):
    path = str(tmp_path / "ckpt.safetensors")
    best = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.AdamW(model.parameters())
    sasrec_checkpoint.save_training_state(path, model, CFG, "synthetic", best=best, optimizer=opt, trainer={"epoch": 1})
    state = sasrec_checkpoint.load_training_state(path)
    assert state.config == CFG and state.trainer == {"epoch": 1}
    loaded, _ = sasrec_checkpoint.load_model(path)
    assert torch.equal(scores(loaded.eval()), scores(model))


def _newer_version(path: str, model) -> None:
    sasrec_checkpoint.save_model(path, model, CFG)
    tensors, meta = checkpoint.read(path)
    save_file(tensors, path, metadata={**meta, "format_version": str(checkpoint.FORMAT_VERSION + 1)})


def _foreign(path: str, model) -> None:
    save_file({"x": torch.zeros(1)}, path)


def _truncated(path: str, model) -> None:
    sasrec_checkpoint.save_model(path, model, CFG)
    with open(path, "r+b") as f:
        f.truncate(40)


def _wrong_weights(path: str, model) -> None:
    meta = sasrec_checkpoint.model_metadata(model, CFG, "")
    meta["config"] = json.dumps({**asdict(CFG), "dim": 32})
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path, metadata=meta)


@pytest.mark.parametrize(
    "make, match",
    [
        (None, "no such checkpoint"),
        (_newer_version, "format version"),
        (_foreign, "not a recengine model"),
        (_truncated, "not a readable"),
        (_wrong_weights, "do not match"),
    ],
)
def test_load_errors_name_the_file(model, tmp_path, make, match):
    path = str(tmp_path / "bad.safetensors")
    if make is not None:
        make(path, model)
    with pytest.raises(checkpoint.CheckpointError, match=match) as info:
        sasrec_checkpoint.load_model(path)
    assert path in str(info.value)


@pytest.mark.parametrize("item_text", ["tfidf", "minilm"])
def test_model_with_item_text_round_trip(item_text, tmp_path, monkeypatch):
    from recengine.nn.text_encoder import HashingTextEncoder

    monkeypatch.setenv("RECENGINE_CACHE", str(tmp_path))
    data = make_synthetic(num_users=10, num_items=12, seed=0)
    data.item_titles = [f"title {i % 3} word{i % 4}" for i in range(data.num_items)]
    cfg = SASRecConfig(dim=8, num_heads=1, item_text=item_text)
    model = model_from_data(data, cfg, HashingTextEncoder(4))
    path = str(tmp_path / "model.safetensors")
    sasrec_checkpoint.save_model(path, model, cfg)
    loaded, loaded_cfg = sasrec_checkpoint.load_model(path)
    assert loaded_cfg.item_text == item_text
    torch.testing.assert_close(loaded.encoder.item_embeddings(), model.encoder.item_embeddings())


def test_id_dropout_is_kept_in_the_model_file(tmp_path):
    from dataclasses import replace

    cfg = replace(CFG, id_dropout=0.4)
    torch.manual_seed(0)
    model = model_from_data(make_synthetic(30, 20, seed=0), cfg)
    path = str(tmp_path / "m.safetensors")
    sasrec_checkpoint.save_model(path, model, cfg)
    loaded, loaded_cfg = sasrec_checkpoint.load_model(path)
    assert loaded_cfg.id_dropout == 0.4 and loaded.encoder.id_dropout == 0.4


def test_training_keeps_the_raw_item_ids_as_the_model_s_vocabulary(tmp_path):
    """A model trained on a log with string ids answers in those ids once served."""
    import numpy as np

    from recengine.data.dataset import MovieLens
    from recengine.serving.recommender import Recommender
    from recengine.train import SASRecConfig, train_sasrec

    rng = np.random.default_rng(0)
    user = np.repeat(np.arange(30), 6)
    item = rng.integers(0, 20, size=user.size)
    data = MovieLens(
        name="shop",
        user=user,
        item=item,
        rating=np.ones(user.size, np.float32),
        timestamp=np.tile(np.arange(6), 30),
        num_users=30,
        num_items=20,
        raw_item_ids=np.array([f"sku-{i}" for i in range(20)], dtype=object),
    )
    cfg = SASRecConfig(dim=8, max_len=4, num_layers=1, num_heads=1, max_epochs=1, item_features=False)
    train_sasrec(data, cfg, out_dir=str(tmp_path), progress=False, log=lambda *a: None)
    for name in ("model.safetensors", "checkpoint.safetensors"):
        rec = Recommender.load(tmp_path / name)
        assert rec.vocabulary.raw_ids == [f"sku-{i}" for i in range(20)]
    answer = rec.recommend([["sku-3", "sku-5"]], k=3, ids="raw")
    assert all(x.startswith("sku-") for x in answer.items[0]) and len(set(answer.items[0])) == 3
