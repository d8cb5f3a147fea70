"""The `recengine` command line: the top-level parser gathering one module per command (each owns its parser, its
argument checks and its run), and `main`, which checks every argument before any long work.

    recengine train sasrec --dataset ml-100k --out runs/sasrec
    python -m recengine compare --quick

One grammar for every command: --out DIR (default a new ``runs/<command>-<timestamp>``; a directory holding a run
is refused unless --overwrite), --data-root DIR, --quiet; every option's help shows its default; a user error is one
line ``recengine <command>: error: ...`` on stderr and exit code 2, before any work; warnings are one line each.
"""

from __future__ import annotations

import argparse
import contextlib
import warnings

from recengine.cli import bench, coldstart, compare, evaluate, ope, serve, train
from recengine.cli.common import OneLineParser, UsageError, report

#: the commands, in the order `recengine --help` lists them
COMMANDS = (bench, train, evaluate, compare, coldstart, ope, serve)

DESCRIPTION = (
    "recengine is a recommender engine: a large sequence model (a Transformer over each user's history) and "
    "reinforcement-learning agents, on fused operators in C++ (CPU) and Triton (GPU). This command line benchmarks "
    "the operators, trains the large model, compares agents in a simulator fitted to real data, evaluates policies "
    "off-line on logged data and serves a trained model; `recengine <command> --help` describes a command and its "
    "options. Every command that writes files takes --out DIR (default: a new runs/<command>-<timestamp>; a "
    "directory that already holds a run is refused unless --overwrite is given) and --quiet. A user error (a bad "
    "option, a missing or unwritable path) is one line on stderr and exit code 2, before any long work starts."
)


def package_version() -> str:
    """The installed distribution's version (importlib.metadata), else ``recengine.__version__`` (a source tree)."""
    from importlib import metadata

    try:
        return metadata.version("recengine")
    except metadata.PackageNotFoundError:
        import recengine

        return recengine.__version__


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: the top-level options and every command's subparser."""
    p = OneLineParser(prog="recengine", description=DESCRIPTION)
    p.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    sub = p.add_subparsers(title="commands", dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    _show_defaults(p)
    return p


def _show_defaults(parser: argparse.ArgumentParser) -> None:
    """Every option's help ends with its real default (argparse's %(default)s), unless it already says it."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _show_defaults(sub)
        elif action.option_strings and action.help and action.help != argparse.SUPPRESS:
            has_default = action.default not in (None, False, argparse.SUPPRESS)
            if has_default and "%(default)" not in action.help and "default" not in action.help.lower():
                action.help += " (default: %(default)s)"


def one_line_warning(message, category, filename, lineno, line=None) -> str:
    """A warning as the command line prints it: ``warning: <message> (<Category>)``, one line, no source line."""
    text = "; ".join(part.strip() for part in str(message).splitlines() if part.strip())
    return f"warning: {text} ({category.__name__})\n"


@contextlib.contextmanager
def command_line_output(quiet: bool):
    """What the command line sets for the length of one command, and puts back after it: warnings printed on
    one line (`one_line_warning`), and progress bars off with --quiet (recengine.progress.silenced). Library
    code never changes these; only `main` does."""
    from recengine.progress import silenced

    saved = warnings.formatwarning
    warnings.formatwarning = one_line_warning
    try:
        with silenced(quiet):
            yield
    finally:
        warnings.formatwarning = saved


def main(argv: list[str] | None = None) -> int:
    """Parse `argv`, check the arguments and paths before any long work, run the command; a user error is
    one line on stderr and exit code 2 (argparse's errors exit 2 through SystemExit)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "config", None):  # which flags were typed, so that only those override the file
        from recengine.config_file import given_options

        args.given = given_options(parser, argv)
    with command_line_output(getattr(args, "quiet", False)):
        try:
            args.check(args)
        except (UsageError, ValueError, FileNotFoundError) as exc:  # CheckpointError is a ValueError
            return report(f"recengine {args.command}", exc)
        return args.func(args)
