"""recengine.cli: the top-level parser (its description, the commands it gathers, every option's help showing its
default), --version, main's one-line errors, and the entry points `python -m recengine` and `python -m
recengine.cli`."""

import argparse
import subprocess
import sys

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


def test_every_command_module_owns_its_parser_check_and_run():
    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert list(sub.choices) == ["bench", "train", "evaluate", "compare", "coldstart", "ope", "serve"]
    for command in cli.COMMANDS:
        name = command.__name__.rsplit(".", 1)[1]
        defaults = sub.choices[name]._defaults
        assert (defaults["func"], defaults["check"]) == (command.run, command.check), name


def test_help_describes_the_tool_and_lists_each_command_on_one_line(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "80")
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "recommender engine" in out and "exit code 2" in out
    lines = out.splitlines()
    for command in cli.COMMANDS:
        name = command.__name__.rsplit(".", 1)[1]
        row = [line for line in lines if line.split()[:1] == [name]]
        assert len(row) == 1 and row[0].endswith(command.HELP), name


def test_each_command_has_a_description_in_its_help(capsys):
    for command in cli.COMMANDS:
        name = command.__name__.rsplit(".", 1)[1]
        with pytest.raises(SystemExit):
            cli.main([name, "--help"])
        out = " ".join(capsys.readouterr().out.split())
        assert " ".join(command.DESCRIPTION.split()[:12]) in out, name


def _options(parser, path=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _options(sub, (*path, name))
        elif action.option_strings and not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            yield " ".join(path), action


def test_every_option_has_help_that_shows_its_real_default():
    options = list(_options(cli.build_parser()))
    assert len(options) > 40
    for command, action in options:
        assert action.help, f"{command} {action.option_strings}: no help"
        if action.default not in (None, False):
            shown = action.help % {"default": action.default} if "%(default)" in action.help else action.help
            assert "default" in shown.lower(), f"{command} {action.option_strings}: default not shown"


@pytest.mark.parametrize("command", [["train", "sasrec", "--out", "OUT"], ["compare", "--out", "OUT"]])
@pytest.mark.parametrize("text, key", [("dimm = 1\n", "dimm"), ('seed = "one"\n', "seed")])
def test_a_bad_config_file_is_one_line_naming_key_and_file_exit_2(tmp_path, capsys, command, text, key):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    argv = [a.replace("OUT", str(tmp_path / "out")) for a in command] + ["--config", str(path)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert key in err and str(path) in err and err.count("\n") == 1


@pytest.mark.parametrize("module", ["recengine", "recengine.cli"])
def test_python_dash_m_runs_the_command_line(module):
    done = subprocess.run([sys.executable, "-m", module, "--version"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == f"recengine {cli.package_version()}"
    done = subprocess.run([sys.executable, "-m", module, "nope"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1 and "nope" in done.stderr


def test_warnings_are_one_line_inside_a_command_and_restored_after():
    import warnings

    from recengine.progress import _SILENCED

    saved = warnings.formatwarning
    with cli.command_line_output(quiet=True):
        text = warnings.formatwarning(UserWarning("a message\n  spread over lines"), UserWarning, "/x/r.py", 122)
        assert _SILENCED.get() is True
    assert text == "warning: a message; spread over lines (UserWarning)\n"
    assert warnings.formatwarning is saved and _SILENCED.get() is False


def test_a_warning_from_the_command_line_has_no_source_line(tmp_path):
    code = (
        "import warnings, recengine.cli as c\n"
        "c.bench.check = lambda args: warnings.warn('careful: something odd')\n"
        "c.bench.run = lambda args: 0\n"
        "raise SystemExit(c.main(['bench', '--out', 'o']))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0 and done.stderr == "warning: careful: something odd (UserWarning)\n"


WRITERS = ["bench", "train", "evaluate", "compare", "coldstart", "ope"]


@pytest.mark.parametrize("name", WRITERS)
def test_every_command_that_writes_has_out_overwrite_quiet_and_data_root(name):
    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
    options = {s: a for a in sub._actions for s in a.option_strings}
    assert {"--out", "--overwrite", "--quiet", "--data-root"} <= set(options), name
    assert options["--out"].default is None and "runs/" + name + "-<YYYYmmdd-HHMMSS>" in options["--out"].help


@pytest.mark.parametrize("name", ["bench", "train", "evaluate", "compare", "coldstart", "ope", "serve"])
def test_every_command_describes_itself_in_a_paragraph(name):
    module = getattr(cli, name)
    assert len(module.DESCRIPTION.split()) >= 30, name
