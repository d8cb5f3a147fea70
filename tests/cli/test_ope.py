"""`recengine ope`: its parser (the choices are the loader's), the range checks of its numbers after parsing
(one line, exit code 2, before any data is read), and the hand-over to the report."""

import argparse

import pytest

from recengine.cli import main, ope


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="recengine")
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
        "runs/ope",
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
    assert main(["ope", "--out", str(tmp_path), "--data-dir", str(tmp_path)]) == 0
    assert seen[0].out == str(tmp_path) and seen[0].data_dir == str(tmp_path)
