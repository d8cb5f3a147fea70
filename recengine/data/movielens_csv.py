"""MovieLens in GroupLens's CSV layout (ml-20m, ml-25m): ``ratings.csv`` (userId,movieId,rating,timestamp) and
``movies.csv`` (movieId,title,genres with ``|`` between genres), both with a header line, UTF-8.

Arrow reads the ratings (tens of millions of lines; pyarrow, the ``[data]`` extra); the movies go through the
``csv`` module (titles are quoted when they hold commas). There is no user file: users carry no features.
"""

from __future__ import annotations

import csv
import os
import re

import numpy as np

from recengine.data.dataset import NUM_YEAR_BUCKETS, YEAR_IN_TITLE, MovieLens, MovieLensFormatError, year_bucket

__all__ = ["CSV_FILES", "parse_movielens_csv"]

CSV_FILES = ("ratings.csv", "movies.csv")
"""the files of the CSV layout"""
_RATING_COLUMNS = ["userId", "movieId", "rating", "timestamp"]
_NO_GENRES = "(no genres listed)"


def parse_movielens_csv(directory: str, name: str, genre_vocabulary: tuple[str, ...] = ()) -> MovieLens:
    """The dataset in ``directory``'s ``ratings.csv`` and ``movies.csv``; errors name the file (and line)."""
    ratings_path, movies_path = (os.path.join(directory, f) for f in CSV_FILES)
    user, raw_item, rating, timestamp = _read_ratings(ratings_path)
    movie_ids, titles, genre_lists, genre_names = _read_movies(movies_path, genre_vocabulary)
    raw_item_ids = np.array(movie_ids, dtype=np.int64)
    order = np.argsort(raw_item_ids, kind="stable")
    raw_item_ids = raw_item_ids[order]
    if len(np.unique(raw_item_ids)) != len(raw_item_ids):
        raise MovieLensFormatError(f"{movies_path}: duplicate movieId")
    item = np.searchsorted(raw_item_ids, raw_item)
    unknown = (item >= len(raw_item_ids)) | (raw_item_ids[np.minimum(item, len(raw_item_ids) - 1)] != raw_item)
    if unknown.any():
        raise MovieLensFormatError(
            f"{ratings_path}: {int(unknown.sum())} ratings name a movieId missing from {movies_path} "
            f"(first: {int(raw_item[unknown][0])})"
        )
    raw_user_ids, user_index = np.unique(user, return_inverse=True)
    titles = [titles[i] for i in order]
    genre_lists = [genre_lists[i] for i in order]
    counts = np.array([len(g) for g in genre_lists], dtype=np.int64)
    years = [YEAR_IN_TITLE.search(t) for t in titles]
    return MovieLens(
        name=name,
        user=user_index.astype(np.int64),
        item=item.astype(np.int64),
        rating=rating.astype(np.float32),
        timestamp=timestamp.astype(np.int64),
        num_users=len(raw_user_ids),
        num_items=len(raw_item_ids),
        item_features={
            "year": np.array([year_bucket(int(m.group(1)) if m else None) for m in years], dtype=np.int64),
            "genre_offsets": np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            "genre_ids": np.array([g for gl in genre_lists for g in gl], dtype=np.int64),
        },
        item_feature_sizes={"year": NUM_YEAR_BUCKETS, "genre": max(1, len(genre_names))},
        item_titles=titles,
        genre_names=tuple(genre_names),
        raw_user_ids=raw_user_ids.astype(np.int64),
        raw_item_ids=raw_item_ids,
    )


def _read_ratings(path: str):
    try:
        import pyarrow as pa
        import pyarrow.csv as pcsv
    except ImportError:  # pragma: no cover - the [data] extra is part of dev
        raise ImportError(f"{path}: reading the CSV layout needs pyarrow: pip install 'recengine[data]'") from None
    types = {"userId": pa.int64(), "movieId": pa.int64(), "rating": pa.float64(), "timestamp": pa.int64()}
    try:
        table = pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(column_types=types, null_values=[""]))
    except (pa.ArrowInvalid, OSError) as exc:
        raise MovieLensFormatError(_arrow_error(path, str(exc))) from None
    if table.column_names != _RATING_COLUMNS:
        raise MovieLensFormatError(f"{path}: header {table.column_names} is not {_RATING_COLUMNS}")
    if table.num_rows == 0:
        raise MovieLensFormatError(f"{path}: no data rows")
    for number, column in enumerate(_RATING_COLUMNS, start=1):
        values = table.column(column)
        if values.null_count:
            row = int(np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0])
            raise MovieLensFormatError(f"{path}: line {_line_of_row(path, row)}, column {number}: {column} is empty")
    rating = table.column("rating").to_numpy()
    if not np.isfinite(rating).all():
        row = int(np.flatnonzero(~np.isfinite(rating))[0])
        raise MovieLensFormatError(
            f"{path}: line {_line_of_row(path, row)}, column 3: rating {rating[row]} is not a finite number"
        )
    return (
        table.column("userId").to_numpy(),
        table.column("movieId").to_numpy(),
        rating,
        table.column("timestamp").to_numpy(),
    )


_CONVERSION = re.compile(r"In CSV column #(\d+): CSV conversion error to (\w+): invalid value '(.*)'")
_FIELD_COUNT = re.compile(r"CSV parse error: Expected (\d+) columns, got (\d+): (.*)")


def _arrow_error(path: str, message: str) -> str:
    """The message of Arrow's error `message` reading the ratings at `path`, with the file's line and column
    found again for a value that does not convert or a row of the wrong width (Arrow names neither line)."""
    found = _CONVERSION.search(message)
    if found:
        index, kind, value = int(found[1]), found[2], found[3]
        for lineno, fields in _data_lines(path):
            if len(fields) > index and fields[index] == value:
                what = "an integer that fits int64" if kind.startswith("int") else "a number"
                return f"{path}: line {lineno}, column {index + 1}: {_RATING_COLUMNS[index]} is not {what}: {value!r}"
    found = _FIELD_COUNT.search(message)
    if found:
        for lineno, fields in _data_lines(path):
            if len(fields) != int(found[1]) and ",".join(fields) == found[3]:
                return f"{path}: line {lineno}: expected {found[1]} fields, got {len(fields)}"
    return f"{path}: not a ratings file of {_RATING_COLUMNS} ({message})"


def _data_lines(path: str):
    """(line number, fields) of each line after the header of the CSV file at `path` that is not empty."""
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        for lineno, line in enumerate(f, start=1):
            text = line.rstrip("\r\n")
            if lineno > 1 and text:
                yield lineno, text.split(",")


def _line_of_row(path: str, row: int) -> int:
    """The line (1-based) of data row `row` (0-based) of the CSV file at `path`: after the header, counting the
    lines that are not empty, as Arrow's reader does. Read again only when an error is reported."""
    for seen, (lineno, _) in enumerate(_data_lines(path)):
        if seen == row:
            return lineno
    return row + 2


def _read_movies(path: str, genre_vocabulary: tuple[str, ...]):
    vocab = {g: i for i, g in enumerate(genre_vocabulary)}
    ids, titles, genre_lists = [], [], []
    try:
        with open(path, encoding="utf-8", newline="") as f:
            rows = csv.reader(f)
            header = next(rows, None)
            if header != ["movieId", "title", "genres"]:
                raise MovieLensFormatError(f"{path}: header {header} is not ['movieId', 'title', 'genres']")
            for lineno, row in enumerate(rows, start=2):
                if not row:
                    continue
                if len(row) != 3:
                    raise MovieLensFormatError(f"{path}: line {lineno}: expected 3 fields, got {len(row)}")
                try:
                    ids.append(int(row[0]))
                except ValueError:
                    raise MovieLensFormatError(
                        f"{path}: line {lineno}: movieId is not an integer: {row[0]!r}"
                    ) from None
                titles.append(row[1])
                genres = [] if row[2] == _NO_GENRES else [g for g in row[2].split("|") if g]
                genre_lists.append([vocab.setdefault(g, len(vocab)) for g in genres])
    except UnicodeDecodeError as exc:
        raise MovieLensFormatError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    if not ids:
        raise MovieLensFormatError(f"{path}: no data rows")
    return ids, titles, genre_lists, list(vocab)
