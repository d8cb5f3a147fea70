"""Your own data from a path, its format told by what the path is: the one entry `--dataset PATH` goes through.

    data = load_local("my_logs/")            # a RecBole atomic directory: my_logs/<name>.inter (+ .item, .user)
    data = load_local("beauty.txt")          # a sequence file: `user item` per line, each user's lines in time order
    data = load_local("events.parquet")      # a log of user, item, timestamp columns (Parquet, CSV or TSV)

| path | format | loader |
|---|---|---|
| a directory, or a ``.inter`` file | RecBole atomic files | ``recengine.data.atomic.load_atomic`` |
| ``.txt``, ``.seq`` | sequence file | ``recengine.data.sequence_file.load_sequence_file`` |
| ``.parquet``, ``.pq`` | interaction log | ``recengine.data.interactions.load_interactions`` |
| ``.csv``, ``.tsv`` | interaction log (header line; comma / tab separated), read by Arrow | the same |

A log's columns are found by name: the user is the first of ``USER_COLUMNS`` present, the item of
``ITEM_COLUMNS``, the time of ``TIME_COLUMNS`` (e.g. ``user_id,item_id,timestamp`` or MovieLens's
``userId,movieId,rating,timestamp``). Anything else is a ValueError naming the path and the formats known.
"""

from __future__ import annotations

import os

from recengine.data.dataset import MovieLens

__all__ = ["FORMATS", "ITEM_COLUMNS", "TIME_COLUMNS", "USER_COLUMNS", "data_format", "load_local"]

FORMATS = {
    ".txt": "sequence",
    ".seq": "sequence",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".tsv": "csv",
    ".inter": "atomic",
}
"""file extension -> format (a directory is an atomic dataset)"""
USER_COLUMNS = ("user", "user_id", "userId", "userid", "uid", "visitor_id", "customer_id")
ITEM_COLUMNS = ("item", "item_id", "itemId", "itemid", "iid", "movieId", "movie_id", "product_id", "sku")
TIME_COLUMNS = ("timestamp", "time", "ts", "datetime", "event_time", "date")
KNOWN = (
    "a RecBole atomic directory (<name>.inter, optionally .item and .user), a sequence file (.txt, .seq: "
    "`user item` per line), or an interaction log (.parquet, .csv, .tsv with user, item and timestamp columns)"
)
"""the formats, as an error message names them"""


def data_format(path: str | os.PathLike) -> str:
    """ "atomic", "sequence", "parquet" or "csv" for `path` (module docstring), from what it is, without reading it.
    FileNotFoundError when nothing is there; ValueError naming the path and the known formats otherwise."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file or directory")
    if os.path.isdir(path):
        from recengine.data.atomic import _find_inter

        try:
            _find_inter(path)
        except FileNotFoundError as exc:
            raise ValueError(f"{exc}; expected {KNOWN}") from None
        return "atomic"
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise ValueError(f"{path}: unknown data format {ext or '(no extension)'!r}; expected {KNOWN}")
    return FORMATS[ext]


def load_local(path: str | os.PathLike, *, name: str | None = None) -> MovieLens:
    """The dataset at `path` in whichever format `data_format` says; `name` defaults to the file's (or the atomic
    dataset's) own name. Errors name the path: FileNotFoundError when it is missing, ValueError (a
    MovieLensFormatError for atomic and sequence files) when it is not in a known format or is malformed."""
    path = os.fspath(path)
    kind = data_format(path)
    if kind == "atomic":
        from recengine.data.atomic import load_atomic

        data = load_atomic(path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path)))
    elif kind == "sequence":
        from recengine.data.sequence_file import load_sequence_file

        data = load_sequence_file(path)
    else:
        data = _load_log(path, kind)
    if name is not None:
        data.name = name
    return data


def _load_log(path: str, kind: str) -> MovieLens:
    """A Parquet or CSV/TSV log through ``load_interactions``, its columns found by name."""
    from recengine.data.interactions import _arrow, load_interactions

    pa, _ = _arrow()
    stem = os.path.splitext(os.path.basename(path))[0]
    if kind == "parquet":
        import pyarrow.parquet as pq

        try:
            names = pq.read_schema(path).names
        except (pa.ArrowInvalid, OSError) as exc:
            raise ValueError(f"{path}: not a readable Parquet file ({exc})") from None
        columns = _columns(path, names)
        return load_interactions(path, **columns, name=stem)
    import pyarrow.csv as pcsv

    delimiter = "\t" if path.lower().endswith(".tsv") else ","
    try:
        table = pcsv.read_csv(path, parse_options=pcsv.ParseOptions(delimiter=delimiter))
    except (pa.ArrowInvalid, OSError) as exc:
        raise ValueError(f"{path}: not a readable {'TSV' if delimiter == chr(9) else 'CSV'} file ({exc})") from None
    columns = _columns(path, table.column_names)
    try:
        return load_interactions(table, **columns, name=stem)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def _columns(path: str, names: list[str]) -> dict[str, str]:
    """user_col, item_col and time_col of a log with columns `names`; ValueError naming the path otherwise."""
    found = {}
    for arg, choices in (("user_col", USER_COLUMNS), ("item_col", ITEM_COLUMNS), ("time_col", TIME_COLUMNS)):
        column = next((c for c in choices if c in names), None)
        if column is None:
            raise ValueError(
                f"{path}: no {arg[:-4]} column (looked for {', '.join(choices)}; the file has {', '.join(names)})"
            )
        found[arg] = column
    return found
