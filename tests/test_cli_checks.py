"""recengine.cli.common: the argparse type helpers accept their range and refuse the rest; path checks."""

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


def _options(parser, path=()):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _options(sub, (*path, name))
        elif action.option_strings and not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            yield " ".join(path), action


def test_every_option_has_help_that_shows_its_real_default():
    from recengine.cli import build_parser

    options = list(_options(build_parser()))
    assert len(options) > 40
    for command, action in options:
        assert action.help, f"{command} {action.option_strings}: no help"
        if action.default not in (None, False):
            shown = action.help % {"default": action.default} if "%(default)" in action.help else action.help
            assert "default" in shown.lower(), f"{command} {action.option_strings}: default not shown"
