"""`recengine compare`: its settings from the flags and a --config file, and its usage errors (one line, exit code
2, before the run starts)."""

import json

import pytest

from recengine.cli import build_parser, main
from recengine.cli.compare import agent_names
from recengine.report.compare import compare_config_from_args
from tests.data.local_fixture import FORMATS, USERS, write_log


def _parse(argv: list[str]):
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "config", None):
        from recengine.config_file import given_options

        args.given = given_options(parser, argv)
    return args


def test_compare_config_file_then_explicit_flags(tmp_path):
    path = tmp_path / "compare.toml"
    path.write_text(f'seed = 4\nseeds = 2\nout = "{tmp_path / "from_file"}"\n[reinforce]\nlr = 0.005\n')
    cfg = compare_config_from_args(_parse(["compare", "--config", str(path), "--seed", "9"]))
    assert (cfg.seed, cfg.seeds, cfg.out, cfg.reinforce.lr) == (9, 2, str(tmp_path / "from_file"), 0.005)


def test_compare_without_a_file_takes_every_flag():
    cfg = compare_config_from_args(_parse(["compare", "--quick", "--seed", "3", "--dataset", "synthetic"]))
    assert (cfg.quick, cfg.seed, cfg.dataset) == (True, 3, "synthetic")


def _checked(argv, monkeypatch):
    """The arguments `compare` would run with (the run itself replaced)."""
    seen = []
    monkeypatch.setattr("recengine.cli.compare.run", lambda args: seen.append(args) or 0)
    assert main(argv) == 0
    return seen[0]


def test_the_default_out_is_a_new_directory_unless_the_config_file_names_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = _checked(["compare", "--quick"], monkeypatch)
    assert args.out.startswith("runs/compare-") and (tmp_path / args.out).is_dir()
    path = tmp_path / "c.toml"
    path.write_text('out = "from_file"\n')
    assert _checked(["compare", "--config", str(path)], monkeypatch).out == "from_file"
    path.write_text("seed = 2\n")
    assert _checked(["compare", "--config", str(path)], monkeypatch).out.startswith("runs/compare-")


@pytest.mark.parametrize("fmt", FORMATS)
def test_your_own_data_in_every_format_passes_the_checks(tmp_path, monkeypatch, fmt):
    path = write_log(tmp_path, fmt)
    args = _checked(["compare", "--quick", "--dataset", str(path), "--out", str(tmp_path / "o")], monkeypatch)
    cfg = compare_config_from_args(args)
    assert cfg.dataset == str(path)
    from recengine.report.compare import load_data

    data, fallback = load_data(cfg)
    assert fallback is None and (data.name, data.num_users) == ("mylog", USERS)


def test_compare_runs_on_your_own_csv(tmp_path, capsys):
    out = tmp_path / "o"
    argv = ["compare", "--quick", "--dataset", str(write_log(tmp_path, "csv")), "--out", str(out)]
    assert main([*argv, "--agents", "random,popularity", "--no-robustness", "--quiet", "--threads", "1"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["meta"]["dataset"] == "mylog" and results["meta"]["fallback"] is None
    assert list(results["agents"]) == ["random", "popularity"]
    assert sorted(results["files"]) == sorted(p.name for p in out.iterdir())
    assert capsys.readouterr().out == f"wrote {out}: {', '.join(results['files'])}\n"


def test_agents_are_split_on_commas_blanks_dropped():
    assert _parse(["compare", "--agents", " random, popularity,,"]).agents == ["random", "popularity"]
    assert {"random", "popularity", "large-model"} <= set(agent_names())


def test_seeds_must_be_positive(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "--quick", "--dataset", "synthetic", "--out", str(tmp_path), "--seeds", "0"])
    assert exit_info.value.code == 2 and "--seeds" in capsys.readouterr().err


@pytest.mark.parametrize("agents", ["popularity,oracle", ","])
def test_agents_option_names_unknown_agents(tmp_path, capsys, agents):
    code = main(["compare", "--quick", "--dataset", "synthetic", "--out", str(tmp_path), "--agents", agents])
    err = capsys.readouterr().err
    assert code == 2 and "--agents" in err and len(err.strip().splitlines()) == 1


def test_the_dataset_names_are_the_configs():
    from recengine.cli.compare import DATASET_NAMES
    from recengine.report import compare_config

    assert DATASET_NAMES == compare_config.DATASET_NAMES


def test_a_malformed_file_of_yours_is_one_line_before_any_work(tmp_path, capsys):
    path = tmp_path / "log.csv"
    path.write_text("user,item,timestamp\na,b,soon\n")
    assert main(["compare", "--quick", "--dataset", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"recengine compare: error: --dataset: {path}:") and err.count("\n") == 1
    assert not (tmp_path / "o").exists()
