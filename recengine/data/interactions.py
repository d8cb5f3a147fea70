"""Your own interaction logs: a pandas DataFrame, an Arrow table or a Parquet file of (user, item, timestamp
[, rating]) columns, with ids of any type, into the dataset every recengine loader returns.

    import pandas as pd
    from recengine.data import load_interactions

    log = pd.DataFrame({"user": ["u1", "u1", "u2"], "item": ["sku-9", "sku-3", "sku-9"], "timestamp": [5, 7, 6]})
    data = load_interactions(log)                           # or an Arrow table, or "events.parquet"
    split = leave_one_out(histories_of(data))               # the same splits, training and evaluation as MovieLens
    data.raw_item_ids[data.item]                            # back to your ids

Arrow does the reading and the id numbering (pyarrow, the ``[data]`` extra; pandas only when you pass a
DataFrame). Ids are numbered in sorted order of the raw ids; timestamps may be integers, floats or Arrow
timestamps (read as seconds); rows keep their order, so ties in time keep the order of the log.
"""

from __future__ import annotations

import os

import numpy as np

from recengine.data.dataset import MovieLens

__all__ = ["load_interactions"]


def load_interactions(
    source,
    *,
    user_col: str = "user",
    item_col: str = "item",
    time_col: str = "timestamp",
    rating_col: str | None = None,
    name: str | None = None,
) -> MovieLens:
    """The dataset of `source` (a pandas DataFrame, a ``pyarrow.Table``, or the path of a Parquet file) whose
    columns `user_col`, `item_col`, `time_col` (and `rating_col`, default: every rating 1) hold one interaction
    per row. `name` defaults to the file's stem, else "interactions".

    Raises TypeError for a source of another kind, FileNotFoundError for a missing file, and ValueError naming
    the column (and the file) for a missing column, an empty log, a null, or a timestamp or rating that is not a
    finite number."""
    pa, pc = _arrow()
    where = "source"
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"source: {path} is not a file" + ("" if os.path.exists(path) else " (no such file)")
            )
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise ValueError(f"source: {path} is not a readable Parquet file ({exc})") from None
        where = path
        name = name or os.path.splitext(os.path.basename(path))[0]
    elif isinstance(source, pa.Table):
        table = source
    elif type(source).__name__ == "DataFrame" and hasattr(source, "columns"):
        table = pa.Table.from_pandas(source, preserve_index=False)
    else:
        raise TypeError(
            f"source: expected a pandas DataFrame, a pyarrow.Table or a Parquet file path, got {type(source).__name__}"
        )
    columns = {"user_col": user_col, "item_col": item_col, "time_col": time_col}
    if rating_col is not None:
        columns["rating_col"] = rating_col
    for arg, column in columns.items():
        if not isinstance(column, str):
            raise TypeError(f"{arg}: expected a column name (str), got {type(column).__name__}")
        if column not in table.column_names:
            raise ValueError(f"{arg}: {where} has no column {column!r} (columns: {table.column_names})")
    if table.num_rows == 0:
        raise ValueError(f"source: {where} holds no rows")
    for column in columns.values():
        nulls = table.column(column).null_count
        if nulls:
            raise ValueError(f"{column}: {where} has {nulls} null value(s) in column {column!r}")

    raw_users, user = _numbered(table.column(user_col), pc)
    raw_items, item = _numbered(table.column(item_col), pc)
    timestamp = _numbers(table.column(time_col), time_col, where, pa)
    rating = (
        _numbers(table.column(rating_col), rating_col, where, pa) if rating_col is not None else np.ones(table.num_rows)
    )
    return MovieLens(
        name=name or "interactions",
        user=user,
        item=item,
        rating=rating.astype(np.float32),
        timestamp=timestamp.astype(np.int64),
        num_users=len(raw_users),
        num_items=len(raw_items),
        item_titles=[],
        genre_names=(),
        raw_user_ids=raw_users,
        raw_item_ids=raw_items,
    )


def _arrow():
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
    except ImportError:  # pragma: no cover - the [data] extra is part of dev
        raise ImportError(
            "load_interactions needs pyarrow: pip install 'recengine[data]' (or pip install pyarrow)"
        ) from None
    return pa, pc


def _numbered(column, pc) -> tuple[np.ndarray, np.ndarray]:
    """(the distinct raw ids in sorted order as a NumPy array, each row's 0-based index) of an Arrow column."""
    distinct = pc.unique(column)
    distinct = distinct.take(pc.sort_indices(distinct))
    index = pc.index_in(column, value_set=distinct).to_numpy(zero_copy_only=False).astype(np.int64)
    raw = distinct.to_numpy(zero_copy_only=False)
    return raw, index


def _numbers(column, what: str, where: str, pa) -> np.ndarray:
    """A numeric or timestamp column as float64 (timestamps in seconds), every value finite."""
    kind = column.type
    if pa.types.is_timestamp(kind):
        values = column.cast(pa.timestamp("s")).cast(pa.int64()).to_numpy().astype(np.float64)
    elif pa.types.is_integer(kind) or pa.types.is_floating(kind):
        values = column.to_numpy().astype(np.float64)
    else:
        raise ValueError(f"{what}: column {what!r} of {where} must be numeric or a timestamp, got {kind}")
    bad = ~np.isfinite(values) | (np.abs(values) > 2.0**62)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{what}: column {what!r} of {where} holds a value that is not a finite number (row {row})")
    return values
