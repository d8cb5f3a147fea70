"""The cold-start report (`recengine coldstart`): the files it writes, the variants it compares, the item-id dropout."""

from __future__ import annotations

import json
import math

import pytest

from recengine.data.synthetic import make_synthetic
from recengine.nn.text_encoder import HashingTextEncoder
from recengine.report import cold_start
from recengine.train.config import SASRecConfig


@pytest.fixture(scope="module")
def data():
    d = make_synthetic(num_users=40, num_items=30, min_len=5, max_len=12, seed=4)
    d.item_titles = [f"title word{i % 5} genre{i % 3}" for i in range(d.num_items)]
    return d


def test_report_holds_every_variant_and_the_pairs_against_genre_and_ids(data, tmp_path):
    base = SASRecConfig(dim=8, max_len=8, num_layers=1, num_heads=1, max_epochs=1, max_seconds=math.inf)
    results = cold_start.run_cold_start(
        data,
        str(tmp_path),
        variants=["ids", "genre", "tfidf", "minilm"],
        base=base,
        share=0.2,
        text_encoder=HashingTextEncoder(8),
        log=lambda *a: None,
    )
    written = json.loads((tmp_path / "coldstart.json").read_text())
    assert list(written["variants"]) == ["ids", "genre", "tfidf", "minilm"]
    assert set(written["paired"]) == {"tfidf - genre", "minilm - genre", "genre - ids", "tfidf - ids", "minilm - ids"}
    assert written["events"]["cold"] == results["events"]["cold"] > 0
    assert 0 < written["events"]["cold_users"] <= written["events"]["cold"]
    text = (tmp_path / "coldstart.md").read_text()
    assert "| tfidf - genre |" in text
    lines = text.splitlines()
    summary = lines[2:7]
    assert lines[1] == lines[7] == "" and all(line.startswith("- ") for line in summary)
    assert summary[1] == "- Trained: ids, genre, tfidf, minilm (the same model, seed and epoch budget)."
    assert "genre - ids" in summary[4] and "minilm - ids" in summary[4]
    assert written["files"] == ["coldstart.json", "coldstart.md"]


def test_unknown_variant_is_rejected(data, tmp_path):
    with pytest.raises(ValueError, match="variants"):
        cold_start.run_cold_start(data, str(tmp_path), variants=["bert"])


# ------------------------------------------------------------------------------------ item-id dropout
TINY = SASRecConfig(dim=8, max_len=8, num_layers=1, num_heads=1, max_epochs=1, max_seconds=math.inf)


def test_feature_variants_train_with_id_dropout_and_ids_without(data, tmp_path, monkeypatch):
    used = {}
    real = cold_start.train_sasrec

    def spy(data, cfg, **kw):
        used[(cfg.item_features, cfg.item_text)] = cfg.id_dropout
        return real(data, cfg, **kw)

    monkeypatch.setattr(cold_start, "train_sasrec", spy)
    results = cold_start.run_cold_start(
        data, str(tmp_path), variants=["ids", "genre", "tfidf"], base=TINY, share=0.2, id_dropout=0.3, log=print
    )
    assert used == {(False, "none"): 0.0, (True, "none"): 0.3, (True, "tfidf"): 0.3}
    assert results["id_dropout"] == 0.3
    assert [v["id_dropout"] for v in results["variants"].values()] == [0.0, 0.3, 0.3]
    assert "item-id dropout 0.3" in (tmp_path / "coldstart.md").read_text()


def test_id_dropout_defaults_and_is_checked_before_training(data, tmp_path, monkeypatch):
    assert cold_start.DEFAULT_ID_DROPOUT > 0
    monkeypatch.setattr(cold_start, "train_sasrec", lambda *a, **k: pytest.fail("trained despite a bad setting"))
    with pytest.raises(ValueError, match="id_dropout"):
        cold_start.run_cold_start(data, str(tmp_path), variants=["genre"], base=TINY, id_dropout=1.0)
