"""RecBole atomic datasets: a directory with ``<name>.inter`` and, optionally, ``<name>.item`` and ``<name>.user``.

Each file is tab separated with a typed header line, ``field:type`` per column, type one of ``token``,
``token_seq`` (space-separated tokens), ``float``, ``float_seq`` (RecBole's atomic format)::

    user_id:token   item_id:token   rating:float    timestamp:float
    196             242             3               881250949

What ``load_atomic`` makes of them (a ``MovieLens`` with contiguous 0-based ids, the shape every loader returns):

* ``.inter``: ``user_id`` and ``item_id`` (required), ``rating`` (default 1) and ``timestamp`` (default the line
  number); other columns are ignored.
* ``.item``: the item's text (its ``*title*`` or ``*name*`` column, else its first ``token_seq`` column that is
  not a genre column) goes to ``item_titles``; a ``class``/``genre``/``genres`` column gives the genres; a
  ``*year*`` column the release-year bucket.
* ``.user``: every other ``token`` column is a categorical user feature; an ``age`` column is bucketed.

Users and items are those of the ``.user`` / ``.item`` files and of the interactions, ordered by raw id (numerically
when every id is an integer). A malformed file is a ``MovieLensFormatError`` naming the file and line.
"""

from __future__ import annotations

import glob
import os

import numpy as np

from recengine.data.dataset import (
    AGE_EDGES,
    NUM_YEAR_BUCKETS,
    YEAR_IN_TITLE,
    MovieLens,
    MovieLensFormatError,
    age_bucket,
    year_bucket,
)

__all__ = ["load_atomic", "parse_atomic", "parse_atomic_text", "read_atomic_file"]

_TYPES = ("token", "token_seq", "float", "float_seq")
_GENRE_COLUMNS = ("class", "genre", "genres")


def read_atomic_file(path: str) -> tuple[dict[str, str], list[tuple[int, list[str]]]]:
    """The header ({field: type}, in column order) and the data rows (line number, fields) of one atomic file."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError as exc:
        raise MovieLensFormatError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    return parse_atomic_text(text, path)


def parse_atomic_text(text: str, where: str) -> tuple[dict[str, str], list[tuple[int, list[str]]]]:
    """The header and data rows of one atomic file's text; `where` names the file in errors."""
    lines = text.splitlines()
    if not lines:
        raise MovieLensFormatError(f"{where}: empty file (expected a typed header line)")
    header: dict[str, str] = {}
    for column in lines[0].split("\t"):
        name, sep, kind = column.strip().partition(":")
        if not sep or kind not in _TYPES:
            raise MovieLensFormatError(
                f"{where}: line 1: header field {column!r} is not name:type with type in {_TYPES}"
            )
        header[name] = kind
    rows = []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != len(header):
            raise MovieLensFormatError(
                f"{where}: line {lineno}: expected {len(header)} tab-separated fields, got {len(fields)}"
            )
        rows.append((lineno, fields))
    return header, rows


def _column(header: dict[str, str], rows, name: str) -> list[str]:
    i = list(header).index(name)
    return [fields[i].strip() for _, fields in rows]


def _where(path: str, lineno: int, header: dict[str, str], name: str) -> str:
    """``path: line N, column C (name)``: where one field of an atomic file is, for errors."""
    return f"{path}: line {lineno}, column {list(header).index(name) + 1} ({name})"


def _numbers(
    header: dict[str, str],
    rows,
    name: str,
    path: str,
    what: str,
    limit: float = 2.0**62,
    *,
    integer: bool = False,
) -> np.ndarray:
    """Column `name` as finite floats of magnitude <= `limit` (whole numbers if `integer`); the first bad field is
    an error naming the file, line and column."""
    values = _column(header, rows, name)
    out = np.empty(len(values), np.float64)
    for k, value in enumerate(values):
        try:
            out[k] = float(value)
        except ValueError:
            raise MovieLensFormatError(
                f"{_where(path, rows[k][0], header, name)}: {what} is not a number: {value!r}"
            ) from None
        if not np.isfinite(out[k]) or abs(out[k]) > limit:
            raise MovieLensFormatError(
                f"{_where(path, rows[k][0], header, name)}: {what} must be a finite number of magnitude "
                f"<= {limit:g}, got {value!r}"
            )
        if integer and out[k] != np.floor(out[k]):
            raise MovieLensFormatError(
                f"{_where(path, rows[k][0], header, name)}: {what} must be a whole number, got {value!r}"
            )
    return out


def _ids(header: dict[str, str], rows, name: str, path: str, what: str) -> list[str]:
    """Column `name` of ids; an empty id is an error naming the file, line and column."""
    values = _column(header, rows, name)
    empty = next((k for k, v in enumerate(values) if not v), None)
    if empty is not None:
        raise MovieLensFormatError(f"{_where(path, rows[empty][0], header, name)}: empty {what}")
    return values


def _ordered_ids(*id_lists: list[str]) -> list[str]:
    ids = set().union(*id_lists)
    if all(i.lstrip("-").isdigit() for i in ids):
        return sorted(ids, key=int)
    return sorted(ids)


def _raw_ids(ids: list[str]) -> np.ndarray:
    if all(i.lstrip("-").isdigit() for i in ids):
        return np.array([int(i) for i in ids], dtype=np.int64)
    return np.array(ids, dtype=object)


def _title_column(header: dict[str, str]) -> str | None:
    names = [n for n in header if n != "item_id"]
    for want in ("title", "name"):
        for n in names:
            if want in n.lower():
                return n
    for n in names:
        if header[n] == "token_seq" and n not in _GENRE_COLUMNS:
            return n
    return None


def _find_inter(directory: str) -> str:
    found = sorted(glob.glob(os.path.join(directory, "*.inter")))
    if len(found) != 1:
        what = "no .inter file" if not found else f"{len(found)} .inter files {[os.path.basename(f) for f in found]}"
        raise FileNotFoundError(f"{directory}: an atomic dataset needs exactly one <name>.inter file, found {what}")
    return found[0]


def load_atomic(directory: str | os.PathLike) -> MovieLens:
    """Load the RecBole atomic dataset in ``directory`` (module docstring); its name is the ``.inter`` file's."""
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"directory: {directory} is not a directory")
    inter_path = _find_inter(directory)
    name = os.path.basename(inter_path)[: -len(".inter")]
    tables = {"inter": (read_atomic_file(inter_path), inter_path)}
    for ext in ("item", "user"):
        path = os.path.join(directory, f"{name}.{ext}")
        if os.path.isfile(path):
            tables[ext] = (read_atomic_file(path), path)
    return parse_atomic(tables, name)


def parse_atomic(
    tables: dict[str, tuple[tuple[dict[str, str], list], str]],
    name: str,
    *,
    genre_vocabulary: tuple[str, ...] = (),
    user_columns: tuple[str, ...] | None = None,
) -> MovieLens:
    """The dataset of parsed atomic files: ``tables["inter"]`` and optionally ``"item"`` / ``"user"``, each
    ((header, rows), where) as ``parse_atomic_text`` returns them with the file's name for errors.

    ``genre_vocabulary`` fixes the first genre ids (a known dataset's genre order, so every copy of it numbers
    genres alike); genres not in it follow in order of appearance. ``user_columns`` picks the user features
    (default: every token/float column but ``user_id``)."""
    (header, rows), inter_path = tables["inter"]
    for required in ("user_id", "item_id"):
        if required not in header:
            raise MovieLensFormatError(f"{inter_path}: the header has no {required} field ({list(header)})")
    if not rows:
        raise MovieLensFormatError(f"{inter_path}: no data rows")
    inter_users = _ids(header, rows, "user_id", inter_path, "user id")
    inter_items = _ids(header, rows, "item_id", inter_path, "item id")
    rating = _numbers(header, rows, "rating", inter_path, "rating") if "rating" in header else np.ones(len(rows))
    timestamp = (
        _numbers(header, rows, "timestamp", inter_path, "timestamp", integer=True)
        if "timestamp" in header
        else np.arange(len(rows), dtype=np.float64)
    )

    item_table, item_path = tables.get("item", (None, None))
    user_table, user_path = tables.get("user", (None, None))
    for path, table, field in ((item_path, item_table, "item_id"), (user_path, user_table, "user_id")):
        if table is not None and field not in table[0]:
            raise MovieLensFormatError(f"{path}: the header has no {field} field ({list(table[0])})")

    file_items = _ids(*item_table, "item_id", item_path, "item id") if item_table else []
    file_users = _ids(*user_table, "user_id", user_path, "user id") if user_table else []
    items = _ordered_ids(inter_items, file_items)
    users = _ordered_ids(inter_users, file_users)
    item_index = {raw: i for i, raw in enumerate(items)}
    user_index = {raw: u for u, raw in enumerate(users)}

    titles = [""] * len(items)
    genre_lists: list[list[int]] = [[] for _ in items]
    years = np.zeros(len(items), np.int64)
    genre_names: list[str] = []
    if item_table:
        ih, irows = item_table
        rows_of = [item_index[i] for i in file_items]
        title = _title_column(ih)
        if title is not None:
            for k, value in zip(rows_of, _column(ih, irows, title)):
                titles[k] = value
        genre = next((c for c in _GENRE_COLUMNS if c in ih), None)
        if genre is not None:
            vocab: dict[str, int] = {g: i for i, g in enumerate(genre_vocabulary)}
            for k, value in zip(rows_of, _column(ih, irows, genre)):
                genre_lists[k] = [vocab.setdefault(token, len(vocab)) for token in value.split()]
            genre_names = list(vocab)
        year = next((c for c in ih if "year" in c.lower() and ih[c] in ("token", "float")), None)
        if year is not None:
            for k, value in zip(rows_of, _column(ih, irows, year)):
                if value.replace(".", "", 1).isdigit() and len(value) < 12:
                    years[k] = year_bucket(int(float(value)))
                else:  # not a year (ml-100k's copy has "V" once): the "(1995)" a MovieLens title ends with, if any
                    found = YEAR_IN_TITLE.search(titles[k])
                    years[k] = year_bucket(int(found.group(1))) if found else 0

    user_features: dict[str, np.ndarray] = {}
    user_feature_sizes: dict[str, int] = {}
    if user_table:
        uh, urows = user_table
        rows_of = [user_index[u] for u in file_users]
        for column, kind in uh.items():
            if column == "user_id" or kind not in ("token", "float"):
                continue
            if user_columns is not None and column not in user_columns:
                continue
            values = _column(uh, urows, column)
            feature = np.zeros(len(users), np.int64)  # 0: users the .user file does not describe
            if column == "age":
                ages = _numbers(uh, urows, column, user_path, "age", limit=1000.0)
                feature[rows_of] = [age_bucket(int(a)) for a in ages]
                size = len(AGE_EDGES) + 1
            else:
                vocab_list = sorted(set(values))
                index = {v: i for i, v in enumerate(vocab_list)}
                feature[rows_of] = [index[v] for v in values]
                size = len(vocab_list)
            user_features[column], user_feature_sizes[column] = feature, size

    counts = np.array([len(g) for g in genre_lists], dtype=np.int64)
    return MovieLens(
        name=name,
        user=np.array([user_index[u] for u in inter_users], dtype=np.int64),
        item=np.array([item_index[i] for i in inter_items], dtype=np.int64),
        rating=rating.astype(np.float32),
        timestamp=timestamp.astype(np.int64),
        num_users=len(users),
        num_items=len(items),
        user_features=user_features,
        user_feature_sizes=user_feature_sizes,
        item_features={
            "year": years,
            "genre_offsets": np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            "genre_ids": np.array([g for gl in genre_lists for g in gl], dtype=np.int64),
        },
        item_feature_sizes={"year": NUM_YEAR_BUCKETS, "genre": max(1, len(genre_names))},
        item_titles=titles,
        genre_names=tuple(genre_names),
        raw_user_ids=_raw_ids(users),
        raw_item_ids=_raw_ids(items),
    )
