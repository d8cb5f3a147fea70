"""`recengine ope`: its parser (the choices are the loader's), the range checks of its numbers after parsing
(one line, exit code 2, before any data is read), and the hand-over to the report."""

import argparse

import pytest

from recengine.cli import main, ope
from recengine.cli.common import OneLineParser


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = OneLineParser(prog="recengine")
    ope.add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


@pytest.mark.parametrize("argv", [["ope", "--dataset", "movielens"], ["ope", "--behavior", "greedy"]])
def test_parser_rejects_unknown_choices(argv):
    with pytest.raises(SystemExit):
        _parse(argv)


def test_parser_choices_are_the_loaders():
    from recengine.data import open_bandit

    assert (ope.BEHAVIORS, ope.CAMPAIGNS) == (open_bandit.BEHAVIORS, open_bandit.CAMPAIGNS)


def test_defaults():
    args = _parse(["ope"])
    assert (args.behavior, args.evaluate, args.campaign, args.out, args.n_sim, args.seed) == (
        "random",
        "bts",
        "all",
        None,  # resolved by check: a new runs/ope-<timestamp>
        100_000,
        12345,
    )
    assert args.func is ope.run and args.check is ope.check


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--folds", "1", "argument --folds: must be >= 2, got 1"),
        ("--alpha", "1", "argument --alpha: must be in (0, 1), got 1"),
        ("--dros-lambda", "-1", "argument --dros-lambda: must be >= 0, got -1"),
    ],
)
def test_a_number_out_of_range_is_one_line_before_any_work(tmp_path, capsys, flag, value, message):
    assert main(["ope", "--out", str(tmp_path / "o"), flag, value]) == 2
    assert capsys.readouterr().err == f"recengine ope: error: {message}\n"
    assert not (tmp_path / "o").exists()


def test_run_hands_the_arguments_to_the_report(monkeypatch, tmp_path):
    seen = []
    monkeypatch.setattr("recengine.report.ope.main_from_args", lambda args: seen.append(args) or 0)
    assert main(["ope", "--out", str(tmp_path), "--data-root", str(tmp_path)]) == 0
    assert seen[0].out == str(tmp_path) and seen[0].data_root == str(tmp_path)


def test_the_default_out_is_a_new_timestamped_directory(monkeypatch, tmp_path):
    seen = []
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("recengine.report.ope.main_from_args", lambda args: seen.append(args.out) or 0)
    assert main(["ope"]) == 0 and main(["ope"]) == 0
    assert seen[0].startswith("runs/ope-") and seen[1].startswith("runs/ope-") and seen[0] != seen[1]
    assert (tmp_path / seen[0]).is_dir()


def test_the_old_data_dir_spelling_suggests_the_new_one(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["ope", "--data-dir", "x"])
    assert exc.value.code == 2
    assert capsys.readouterr().err == (
        "recengine ope: error: unrecognized arguments: --data-dir x (did you mean '--data-root'?) (see --help)\n"
    )
