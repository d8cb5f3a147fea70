"""`recengine train sasrec`: the run directory it writes, and a clear error when the data is missing."""

from __future__ import annotations

import json

from recengine.cli import build_parser, main
from recengine.train.sasrec import CHECKPOINT, MODEL


def test_cli_train_writes_outputs(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(
        [
            "train",
            "sasrec",
            "--dataset",
            "synthetic",
            "--out",
            str(out),
            "--synthetic-users",
            "80",
            "--synthetic-items",
            "60",
            "--max-epochs",
            "2",
            "--dim",
            "16",
            "--max-len",
            "10",
            "--num-layers",
            "1",
            "--bpr-epochs",
            "1",
        ]
    )
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
    # the closing line names what the run wrote, and nothing it did not (no sharded/ from one process)
    assert f"curve.png, {MODEL}, {CHECKPOINT}\n" in printed and "sharded" not in printed


def test_cli_reports_missing_data(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("RECENGINE_DATA", raising=False)
    monkeypatch.setenv("RECENGINE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(
        "recengine.data.movielens.fetch_dataset_wheel", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("offline"))
    )
    rc = main(["train", "sasrec", "--dataset", "ml-100k", "--data-root", str(tmp_path), "--out", str(tmp_path / "o")])
    assert rc == 2
    assert "not found" in capsys.readouterr().err


def test_root_is_an_alias_of_data_root():
    args = build_parser().parse_args(["train", "sasrec", "--out", "o", "--root", "somewhere"])
    assert args.data_root == "somewhere"
