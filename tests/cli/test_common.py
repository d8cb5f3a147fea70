"""recengine.cli.common: the argparse type helpers accept their range and refuse the rest; path checks; the options
several commands share (--data-root with its --root alias, --item-text and its check)."""

from __future__ import annotations

import argparse
import os

import pytest

from recengine.cli import common as c


@pytest.mark.parametrize(
    "parse, text, value",
    [
        (c.positive_int, "3", 3),
        (c.non_negative_int, "0", 0),
        (c.int_at_least(2), "2", 2),
        (c.positive_float, "0.5", 0.5),
        (c.non_negative_float, "0", 0.0),
        (c.probability, "0", 0.0),
        (c.open_probability, "0.05", 0.05),
        (c.seconds, "inf", float("inf")),
        (c.device_name, "cuda:1", "cuda:1"),
        (c.device_name, "cpu", "cpu"),
    ],
)
def test_accepted(parse, text, value):
    assert parse(text) == value


@pytest.mark.parametrize(
    "parse, text",
    [
        (c.positive_int, "0"),
        (c.positive_int, "1.5"),
        (c.non_negative_int, "-1"),
        (c.int_at_least(2), "1"),
        (c.positive_float, "0"),
        (c.positive_float, "nan"),
        (c.positive_float, "inf"),
        (c.non_negative_float, "-0.1"),
        (c.probability, "1"),
        (c.probability, "-0.1"),
        (c.open_probability, "0"),
        (c.seconds, "0"),
        (c.seconds, "nan"),
        (c.seconds, "soon"),
        (c.device_name, "tpu"),
        (c.device_name, "cuda:"),
        (c.device_name, "CPU"),
    ],
)
def test_refused(parse, text):
    with pytest.raises(argparse.ArgumentTypeError):
        parse(text)


def test_writable_dir_is_created(tmp_path):
    c.check_writable_dir("--out", str(tmp_path / "a" / "b"))
    assert os.path.isdir(tmp_path / "a" / "b") and os.listdir(tmp_path / "a" / "b") == []


def test_unreadable_dir_is_named(tmp_path):
    with pytest.raises(c.UsageError, match="--data-root"):
        c.check_readable_dir("--data-root", str(tmp_path / "missing"))


def test_one_line_parser_exits_2_with_one_line(capsys):
    parser = c.OneLineParser(prog="p")
    parser.add_argument("--n", type=c.positive_int)
    with pytest.raises(SystemExit) as info:
        parser.parse_args(["--n", "0"])
    assert info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == ["p: error: argument --n: must be >= 1, got 0 (see --help)"]


def test_report_joins_a_message_of_several_lines(capsys):
    assert c.report("p", FileNotFoundError("not found; looked in:\n  a\n  b")) == 2
    assert capsys.readouterr().err == "p: error: not found; looked in:; a; b\n"


@pytest.mark.parametrize("command", [["train", "sasrec"], ["compare"], ["coldstart"], ["bench"], ["ope"]])
def test_root_is_an_alias_of_data_root(command):
    from recengine.cli import build_parser

    assert build_parser().parse_args([*command, "--root", "somewhere"]).data_root == "somewhere"


@pytest.mark.parametrize(
    "argv",
    [
        ["coldstart", "--out", "{tmp}", "--variants", "minilm"],
        ["train", "sasrec", "--dataset", "synthetic", "--out", "{tmp}", "--item-text", "minilm"],
        ["compare", "--quick", "--out", "{tmp}", "--item-text", "minilm"],
    ],
)
def test_minilm_without_the_extra_is_a_usage_error(monkeypatch, tmp_path, capsys, argv):
    from recengine.cli import main

    monkeypatch.setattr("recengine.nn.text_encoder.minilm_available", lambda: False)
    assert main([a.replace("{tmp}", str(tmp_path / "o")) for a in argv]) == 2
    assert "recengine[text]" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_unknown_item_text_is_a_usage_error(tmp_path):
    from recengine.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["train", "sasrec", "--out", str(tmp_path), "--item-text", "bert"])
    assert exc.value.code == 2


def test_did_you_mean_names_the_closest_or_nothing():
    assert c.did_you_mean("--epochs", ["--max-epochs", "--dim"]) == " (did you mean '--max-epochs'?)"
    assert c.did_you_mean("--zzz", ["--max-epochs", "--dim"]) == ""


def _two_level_parser():
    parser = c.OneLineParser(prog="tool")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    run.add_argument("--max-epochs", type=int)
    run.add_argument("--mode", choices=["fast", "slow"])
    return parser


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["run", "--epochs", "2"],
            "tool run: error: unrecognized arguments: --epochs 2 (did you mean '--max-epochs'?)",
        ),
        (["run", "--epochs=2"], "tool run: error: unrecognized arguments: --epochs=2 (did you mean '--max-epochs'?)"),
        (["run", "--mode", "fats"], "tool run: error: argument --mode: invalid choice: 'fats' (did you mean 'fast'?)"),
        (["rnu"], "tool: error: unknown command 'rnu' (did you mean 'run'?) (choose from 'run')"),
        (["run", "extra"], "tool run: error: unrecognized arguments: extra (see --help)"),
    ],
)
def test_errors_are_named_after_the_command_with_a_suggestion(capsys, argv, message):
    with pytest.raises(SystemExit) as info:
        _two_level_parser().parse_args(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.startswith(message) and err.count("\n") == 1


def test_default_out_is_new_for_every_run(tmp_path, monkeypatch):
    import time

    monkeypatch.chdir(tmp_path)
    first = c.default_out("train", now=0)
    assert first == os.path.join("runs", "train-" + time.strftime("%Y%m%d-%H%M%S", time.localtime(0)))
    os.makedirs(first)
    assert c.default_out("train", now=0) == first + "-2"
