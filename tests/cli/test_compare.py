"""`recengine compare`: its settings from the flags and a --config file, and its usage errors (one line, exit code
2, before the run starts)."""

import pytest

from recengine.cli import build_parser, main
from recengine.cli.compare import agent_names
from recengine.report.compare import compare_config_from_args


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
    assert (cfg.quick, cfg.seed, cfg.dataset, cfg.out) == (True, 3, "synthetic", "runs/compare")


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
