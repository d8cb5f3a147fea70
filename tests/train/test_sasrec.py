"""Supervised training of the large model: beats Pop on synthetic data, is deterministic, resumes exactly."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from recengine.data import histories_of, leave_one_out, make_synthetic
from recengine.eval.offline import evaluate_model, evaluate_pop
from recengine.train import SASRecConfig, train_sasrec
from recengine.train.sasrec import CHECKPOINT, MODEL

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


def test_loss_falls_and_the_best_epoch_is_recorded(trained):
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


def test_the_callers_global_rng_state_is_untouched(data):
    torch.manual_seed(7)
    expected = torch.rand(4)
    torch.manual_seed(7)
    train_sasrec(data, SASRecConfig(**TINY, max_epochs=1, seed=1), progress=False, log=lambda s: None)
    assert torch.equal(torch.rand(4), expected)


def test_checkpoint_resume_equals_uninterrupted_run(data, tmp_path):
    cfg = SASRecConfig(**TINY, max_epochs=2, seed=2)
    full = train_sasrec(data, cfg, progress=False, log=lambda s: None)
    first = train_sasrec(
        data,
        SASRecConfig(**{**TINY, "max_epochs": 1, "seed": 2}),
        out_dir=str(tmp_path),
        progress=False,
        log=lambda s: None,
    )
    assert len(first.history) == 1 and os.path.exists(tmp_path / CHECKPOINT)
    resumed = train_sasrec(data, cfg, out_dir=str(tmp_path), resume=True, progress=False, log=lambda s: None)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in full.history]
    assert resumed.best_epoch == full.best_epoch and resumed.test == full.test
    for (name, p), q in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(p, q), name


def test_run_directory_holds_the_two_files_only(data, tmp_path):
    train_sasrec(
        data, SASRecConfig(**{**TINY, "max_epochs": 1}), out_dir=str(tmp_path), progress=False, log=lambda s: None
    )
    assert sorted(os.listdir(tmp_path)) == sorted([CHECKPOINT, MODEL])  # no temporary file left behind


def test_resume_refuses_other_settings(data, tmp_path):
    train_sasrec(
        data, SASRecConfig(**{**TINY, "max_epochs": 1}), out_dir=str(tmp_path), progress=False, log=lambda s: None
    )
    with pytest.raises(ValueError, match="different settings"):
        train_sasrec(
            data,
            SASRecConfig(**{**TINY, "max_epochs": 1, "dim": 16}),
            out_dir=str(tmp_path),
            resume=True,
            progress=False,
            log=lambda s: None,
        )


# ------------------------------------------------------------------------------------------ item text
@pytest.fixture(scope="module")
def titled():
    d = make_synthetic(num_users=20, num_items=15, min_len=4, max_len=8, seed=5)
    d.item_titles = [f"film part{i % 4} saga{i % 3}" for i in range(d.num_items)]
    return d


@pytest.mark.parametrize(("item_text", "module"), [("tfidf", "text_tables"), ("minilm", "text_vector_projection")])
def test_model_from_data_adds_the_chosen_item_text(titled, item_text, module, monkeypatch, tmp_path):
    from recengine.nn.text_encoder import HashingTextEncoder
    from recengine.train.sasrec import model_from_data

    monkeypatch.setenv("RECENGINE_CACHE", str(tmp_path))
    model = model_from_data(titled, SASRecConfig(dim=8, num_heads=1, item_text=item_text), HashingTextEncoder(4))
    assert getattr(model.encoder, module) is not None
    assert model.encoder.item_embeddings().shape == (titled.num_items, 8)


def test_item_text_needs_titles(titled):
    from dataclasses import replace

    from recengine.train.sasrec import model_from_data

    with pytest.raises(ValueError, match="item_titles"):
        model_from_data(replace(titled, item_titles=[]), SASRecConfig(item_text="tfidf"))


@pytest.mark.parametrize("item_text", ["bert", "", None])
def test_config_rejects_an_unknown_item_text(item_text):
    with pytest.raises(ValueError, match="item_text"):
        SASRecConfig(item_text=item_text)


# ------------------------------------------------------------------------------------ item-id dropout
def test_id_dropout_reaches_the_model_and_changes_training(data):
    from recengine.train.sasrec import model_from_data

    assert model_from_data(data, SASRecConfig(**TINY, id_dropout=0.3)).encoder.id_dropout == 0.3
    plain = train_sasrec(data, SASRecConfig(**TINY, max_epochs=1, seed=1), progress=False, log=lambda s: None)
    dropped = train_sasrec(
        data, SASRecConfig(**TINY, max_epochs=1, seed=1, id_dropout=0.5), progress=False, log=lambda s: None
    )
    assert dropped.history[0]["loss"] != plain.history[0]["loss"]


def test_item_init_std_rescales_the_item_table_and_leaves_every_other_draw_as_it_was(data):
    from recengine.train.sasrec import model_from_data

    torch.manual_seed(3)
    plain = model_from_data(data, SASRecConfig(**TINY))
    after_plain = torch.get_rng_state()
    torch.manual_seed(3)
    small = model_from_data(data, SASRecConfig(**TINY, item_init_std=0.02))
    assert torch.equal(torch.get_rng_state(), after_plain)  # rescaled, not redrawn
    table = small.encoder.item_embedding
    assert abs(float(table.std()) - 0.02) < 0.002
    torch.testing.assert_close(table, plain.encoder.item_embedding * (0.02 * TINY["dim"] ** 0.5))
    for (name, a), (_, b) in zip(plain.state_dict().items(), small.state_dict().items(), strict=True):
        if name != "encoder.item_embedding":
            assert torch.equal(a, b), name


def test_train_on_valid_fits_the_validation_item_runs_every_epoch_and_keeps_the_last_weights(data, monkeypatch):
    import recengine.train.sasrec as sasrec

    seen_ends = []
    real = sasrec.training_windows

    def spy(items, starts, ends, *args):
        seen_ends.append(np.asarray(ends).copy())
        return real(items, starts, ends, *args)

    monkeypatch.setattr(sasrec, "training_windows", spy)
    split = leave_one_out(histories_of(data))
    cfg = SASRecConfig(**{**TINY, "patience": 1}, max_epochs=3, train_on_valid=True)
    lines = []
    result = train_sasrec(data, cfg, split=split, progress=False, log=lines.append)
    np.testing.assert_array_equal(seen_ends[-1], split.prefix_end("test"))  # up to the test target, not beyond
    assert (split.prefix_end("test") > split.train_end).any()
    assert len(result.history) == 3 and result.best_epoch == 3  # patience does not stop a final fit
    assert any("not held out" in line for line in lines)
    held_out = train_sasrec(data, SASRecConfig(**TINY, max_epochs=1), split=split, progress=False, log=lambda s: None)
    np.testing.assert_array_equal(seen_ends[-1], split.train_end)
    assert held_out.history[0]["loss"] != result.history[0]["loss"]


def test_train_on_valid_must_be_a_bool():
    with pytest.raises(TypeError, match="train_on_valid"):
        SASRecConfig(train_on_valid="yes")


def test_length_buckets_off_trains_on_shuffled_batches(data, monkeypatch):
    import recengine.train.sasrec as sasrec

    bucketed = train_sasrec(data, SASRecConfig(**TINY, max_epochs=1), progress=False, log=lambda s: None)
    real, calls = sasrec.shuffled_batches, []
    monkeypatch.setattr(sasrec, "shuffled_batches", lambda *a: calls.append(a) or real(*a))
    mixed = train_sasrec(data, SASRecConfig(**TINY, max_epochs=1, length_buckets=False), progress=False, log=print)
    assert len(calls) == 1 and calls[0][1] == TINY["batch_size"]
    assert mixed.history[0]["loss"] != bucketed.history[0]["loss"]


def test_cosine_lr_decays_from_lr_to_zero():
    from recengine.train.sasrec import cosine_lr

    assert cosine_lr(0.01, 0.0, 10) == 0.01 and cosine_lr(0.01, 5.0, 10) == pytest.approx(0.005)
    assert cosine_lr(0.01, 10.0, 10) == pytest.approx(0.0, abs=1e-12) and cosine_lr(0.01, 12.0, 10) == cosine_lr(
        0.01, 10.0, 10
    )


def test_cosine_schedule_resumes_exactly_and_changes_the_run(data, tmp_path):
    from dataclasses import replace

    cfg = SASRecConfig(**TINY, max_epochs=2, seed=2, lr_schedule="cosine")
    full = train_sasrec(data, cfg, progress=False, log=lambda s: None)
    constant = train_sasrec(data, replace(cfg, lr_schedule="constant"), progress=False, log=lambda s: None)
    assert full.history[1]["loss"] != constant.history[1]["loss"]
    first = train_sasrec(
        data, replace(cfg, max_seconds=1e-9), out_dir=str(tmp_path), progress=False, log=lambda s: None
    )
    assert len(first.history) == 1 and first.stopped.startswith("time budget")
    resumed = train_sasrec(data, cfg, out_dir=str(tmp_path), resume=True, progress=False, log=lambda s: None)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in full.history]
    for (name, p), q in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(p, q), name
    with pytest.raises(ValueError, match="different settings"):  # max_epochs shapes a cosine run
        train_sasrec(data, replace(cfg, max_epochs=3), out_dir=str(tmp_path), resume=True, progress=False, log=print)


def test_unknown_schedule_is_named():
    with pytest.raises(ValueError, match="lr_schedule"):
        SASRecConfig(lr_schedule="linear")


def test_lean_memory_trains_like_the_standard_path(data):
    from dataclasses import replace

    cfg = SASRecConfig(**TINY, max_epochs=1, seed=1, item_features=False, memory="standard")
    standard = train_sasrec(data, cfg, progress=False, log=lambda s: None)
    lean = train_sasrec(data, replace(cfg, memory="lean"), progress=False, log=lambda s: None)
    auto = train_sasrec(data, replace(cfg, memory="auto"), progress=False, log=lambda s: None)
    assert lean.model.encoder.sparse_input_grad and not standard.model.encoder.sparse_input_grad
    assert lean.history[0]["loss"] == pytest.approx(standard.history[0]["loss"], rel=1e-4)
    # only the order of float rounding differs; Adam turns that into differences of up to a few steps of lr in
    # parameters whose gradients are near zero, so the weights agree to that and the run's quality closely
    for (name, p), q in zip(standard.model.state_dict().items(), lean.model.state_dict().values()):
        torch.testing.assert_close(q, p, rtol=0, atol=10 * cfg.lr, msg=name)
    assert lean.best_valid["ndcg@10"] == pytest.approx(standard.best_valid["ndcg@10"], abs=0.02)
    # a small catalog under "auto" takes the standard path, bit for bit
    assert [h["loss"] for h in auto.history] == [h["loss"] for h in standard.history]
    for (name, p), q in zip(standard.model.state_dict().items(), auto.model.state_dict().values()):
        assert torch.equal(p, q), name


def test_memory_mode_is_checked_and_chosen_by_catalog_size():
    with pytest.raises(ValueError, match="memory"):
        SASRecConfig(memory="small")
    assert not SASRecConfig().lean_memory(99_999) and SASRecConfig().lean_memory(100_000)
    assert SASRecConfig(memory="lean").lean_memory(10) and not SASRecConfig(memory="standard").lean_memory(10**7)
    assert "memory" not in SASRecConfig().trajectory_fields()  # a run may resume on the other path
