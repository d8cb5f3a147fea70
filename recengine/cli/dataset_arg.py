"""--dataset NAME|PATH, as `train` and `compare` read it: a dataset the command knows by name, or the path of your
own data in any format recengine.data.local reads (an atomic directory, a sequence file, a Parquet/CSV log).

    add_dataset(parser, ("ml-100k", "synthetic"))
    check_dataset(args.dataset, ("ml-100k", "synthetic"))   # UsageError naming the path, before any work
"""

from __future__ import annotations

import argparse

from recengine.cli.common import UsageError, did_you_mean

__all__ = ["add_dataset", "check_dataset", "is_named"]


def add_dataset(parser: argparse.ArgumentParser, names: tuple[str, ...], *, note: str = "") -> None:
    """--dataset NAME|PATH with `names` as the names (the first is the default)."""
    parser.add_argument(
        "--dataset",
        default=names[0],
        metavar="NAME|PATH",
        help=f"a dataset by name ({', '.join(names)}{'; ' + note if note else ''}) or the path of your own: a "
        "RecBole atomic directory, a sequence file (.txt: `user item` per line in time order) or a log "
        "(.parquet, .csv, .tsv with user, item, timestamp columns) (default: %(default)s)",
    )


def is_named(value: str, names: tuple[str, ...]) -> bool:
    """Whether `value` is one of the dataset `names` (else it is a path)."""
    return value in names


def check_dataset(value: str, names: tuple[str, ...]) -> None:
    """UsageError (one line, naming --dataset and the path) unless `value` is a name or a path in a known format;
    the file itself is read later, its format errors also naming the path."""
    if is_named(value, names):
        return
    from recengine.data.local import data_format

    try:
        data_format(value)
    except FileNotFoundError:
        raise UsageError(
            f"--dataset: {value!r} is neither a dataset name{did_you_mean(value, names)} nor an existing path "
            f"(names: {', '.join(names)})"
        ) from None
    except ValueError as exc:
        raise UsageError(f"--dataset: {exc}") from None
