"""The `recengine` command line: the top-level options and the --config files of train and compare."""

import pytest

import recengine
from recengine import cli


def test_version_prints_the_package_version_and_exits_0(capsys):
    try:
        cli.main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    else:
        raise AssertionError("--version did not exit")
    assert capsys.readouterr().out.strip() == f"recengine {cli.package_version()}"


def test_package_version_falls_back_to_the_module_version(monkeypatch):
    from importlib import metadata

    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", not_installed)
    assert cli.package_version() == recengine.__version__


def _parse(argv: list[str]):
    parser = cli.build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "config", None):
        from recengine.config_file import given_options

        args.given = given_options(parser, argv)
    return args


def test_train_config_file_sets_the_model_settings(tmp_path):
    path = tmp_path / "sasrec.toml"
    path.write_text("dim = 32\nmax_epochs = 3\n")
    cfg = cli._train_config(_parse(["train", "sasrec", "--out", str(tmp_path), "--config", str(path)]))
    assert (cfg.dim, cfg.max_epochs) == (32, 3)


def test_train_flags_given_override_the_config_file(tmp_path):
    path = tmp_path / "sasrec.toml"
    path.write_text("dim = 32\nmax_epochs = 3\n")
    args = _parse(["train", "sasrec", "--out", str(tmp_path), "--config", str(path), "--max-epochs", "7"])
    cfg = cli._train_config(args)
    assert (cfg.dim, cfg.max_epochs) == (32, 7)


def test_compare_config_file_then_explicit_flags(tmp_path):
    from recengine.report.compare import compare_config_from_args

    path = tmp_path / "compare.toml"
    path.write_text(f'seed = 4\nseeds = 2\nout = "{tmp_path / "from_file"}"\n[reinforce]\nlr = 0.005\n')
    cfg = compare_config_from_args(_parse(["compare", "--config", str(path), "--seed", "9"]))
    assert (cfg.seed, cfg.seeds, cfg.out, cfg.reinforce.lr) == (9, 2, str(tmp_path / "from_file"), 0.005)


def test_compare_without_a_file_takes_every_flag():
    from recengine.report.compare import compare_config_from_args

    cfg = compare_config_from_args(_parse(["compare", "--quick", "--seed", "3", "--dataset", "synthetic"]))
    assert (cfg.quick, cfg.seed, cfg.dataset, cfg.out) == (True, 3, "synthetic", "runs/compare")


@pytest.mark.parametrize("command", [["train", "sasrec", "--out", "OUT"], ["compare", "--out", "OUT"]])
@pytest.mark.parametrize("text, key", [("dimm = 1\n", "dimm"), ('seed = "one"\n', "seed")])
def test_a_bad_config_file_is_one_line_naming_key_and_file_exit_2(tmp_path, capsys, command, text, key):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    argv = [a.replace("OUT", str(tmp_path / "out")) for a in command] + ["--config", str(path)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert key in err and str(path) in err and err.count("\n") == 1


def test_train_writes_the_resolved_config_beside_its_results(tmp_path):
    import json

    path = tmp_path / "tiny.toml"
    path.write_text("dim = 16\nmax_len = 10\nnum_layers = 1\n")
    out = tmp_path / "run"
    argv = ["train", "sasrec", "--dataset", "synthetic", "--synthetic-users", "20", "--synthetic-items", "20"]
    argv += ["--max-epochs", "1", "--no-baselines", "--out", str(out), "--config", str(path)]
    assert cli.main(argv) == 0
    resolved = json.loads((out / "config.json").read_text())
    assert (resolved["dim"], resolved["max_len"], resolved["max_epochs"]) == (16, 10, 1)
