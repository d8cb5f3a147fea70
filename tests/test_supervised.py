"""Supervised training of the large model: beats Pop on synthetic data, checkpoints, resumes, CLI."""
from __future__ import annotations

import json
import os

import pytest
import torch

from recengine.agents.mf import evaluate_pop
from recengine.agents.supervised import (CHECKPOINT, MODEL, SASRecConfig, evaluate_model, load_model,
                                         train_sasrec)
from recengine.data import histories_of, leave_one_out, make_synthetic

TINY = dict(dim=32, max_len=20, num_layers=1, num_heads=2, dropout=0.1, lr=5e-3, batch_size=32, patience=3)


@pytest.fixture(scope="module")
def data():
    return make_synthetic(200, 80, min_len=10, max_len=30, seed=0)


@pytest.fixture(scope="module")
def trained(data):
    return train_sasrec(data, SASRecConfig(**TINY, max_epochs=8, seed=0), progress=False, log=lambda s: None)


def test_beats_popularity_by_a_clear_margin(data, trained):
    pop = evaluate_pop(leave_one_out(histories_of(data)), "test")
    assert trained.test["ndcg@10"] > 1.5 * pop["ndcg@10"], (trained.test, pop)
    assert trained.test["hr@10"] > pop["hr@10"] + 0.05, (trained.test, pop)
    assert trained.best_epoch >= 1 and len(trained.history) >= trained.best_epoch
    losses = [h["loss"] for h in trained.history]
    assert losses[-1] < losses[0]


def test_evaluation_uses_the_best_weights(data, trained):
    split = leave_one_out(histories_of(data))
    assert evaluate_model(trained.model, split, "valid") == pytest.approx(trained.best_valid)


def test_same_seed_same_run(data):
    cfg = SASRecConfig(**TINY, max_epochs=1, seed=1)
    a = train_sasrec(data, cfg, progress=False, log=lambda s: None)
    b = train_sasrec(data, cfg, progress=False, log=lambda s: None)
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]
    for (name, p), q in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(p, q), name


def test_checkpoint_resume_equals_uninterrupted_run(data, tmp_path):
    cfg = SASRecConfig(**TINY, max_epochs=2, seed=2)
    full = train_sasrec(data, cfg, progress=False, log=lambda s: None)
    first = train_sasrec(data, SASRecConfig(**{**TINY, "max_epochs": 1, "seed": 2}), out_dir=str(tmp_path),
                         progress=False, log=lambda s: None)
    assert len(first.history) == 1 and os.path.exists(tmp_path / CHECKPOINT)
    resumed = train_sasrec(data, cfg, out_dir=str(tmp_path), resume=True, progress=False, log=lambda s: None)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in full.history]
    assert resumed.best_epoch == full.best_epoch and resumed.test == full.test
    for (name, p), q in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(p, q), name
    # no temporary files left behind
    assert sorted(os.listdir(tmp_path)) == sorted([CHECKPOINT, MODEL])


def test_resume_refuses_other_settings(data, tmp_path):
    train_sasrec(data, SASRecConfig(**{**TINY, "max_epochs": 1}), out_dir=str(tmp_path), progress=False,
                 log=lambda s: None)
    with pytest.raises(ValueError, match="different settings"):
        train_sasrec(data, SASRecConfig(**{**TINY, "max_epochs": 1, "dim": 16}), out_dir=str(tmp_path),
                     resume=True, progress=False, log=lambda s: None)


def test_saved_model_loads_and_scores_the_same(data, trained, tmp_path):
    from recengine.agents.supervised import save_model

    path = str(tmp_path / "m.safetensors")
    save_model(path, trained.model, trained.config, "synthetic")
    model, cfg = load_model(path)
    assert cfg == trained.config
    split = leave_one_out(histories_of(data))
    assert evaluate_model(model, split, "test") == trained.test
    with pytest.raises(ValueError, match="not a recengine model"):
        from safetensors.torch import save_file

        save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
        load_model(str(tmp_path / "other.safetensors"))


def test_cli_train_writes_outputs(tmp_path, capsys):
    from recengine.cli import main

    out = tmp_path / "run"
    rc = main(["train", "sasrec", "--dataset", "synthetic", "--out", str(out), "--synthetic-users", "80",
               "--synthetic-items", "60", "--max-epochs", "2", "--dim", "16", "--max-len", "10",
               "--num-layers", "1", "--bpr-epochs", "1"])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("hr@10", "ndcg@10", "mrr@10", "epochs", "train_seconds"):
        assert key in metrics
    assert metrics["epochs"] == 2
    assert set(metrics["baselines"]) == {"pop", "bpr"}
    assert (out / "curve.png").stat().st_size > 1000
    assert (out / MODEL).exists() and (out / CHECKPOINT).exists()
    printed = capsys.readouterr().out
    assert "epoch   1" in printed and "ndcg@10" in printed


def test_cli_reports_missing_data(tmp_path, monkeypatch, capsys):
    from recengine.cli import main

    monkeypatch.delenv("RECENGINE_DATA", raising=False)
    monkeypatch.setenv("RECENGINE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("recengine.data.movielens.fetch_recbole_wheel",
                        lambda *a, **k: (_ for _ in ()).throw(RuntimeError("offline")))
    rc = main(["train", "sasrec", "--dataset", "ml-100k", "--root", str(tmp_path), "--out", str(tmp_path / "o")])
    assert rc == 2
    assert "not found" in capsys.readouterr().err
