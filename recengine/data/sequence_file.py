"""Sequence files: one interaction per line, ``user item``, each user's lines in time order.

This is the format the SASRec and BERT4Rec repositories ship their preprocessed datasets in (Amazon Beauty,
Steam, ML-1M as ``beauty.txt`` / ``ml-1m.txt``): whitespace-separated ids, no header, no timestamp. The loader
keeps the file's order as time: an interaction's timestamp is its position in its user's sequence (0, 1, ...),
so the leave-one-out split takes each user's last line for test and the one before for validation.

    data = load_sequence_file("beauty.txt", name="beauty")
    data.raw_item_ids[data.item[0]]      # the file's id of the first interaction's item
"""

from __future__ import annotations

import hashlib
import os

import numpy as np

from recengine.data.dataset import MovieLens, MovieLensFormatError

__all__ = ["load_sequence_file", "parse_sequence_text"]


def load_sequence_file(path: str | os.PathLike, *, name: str | None = None, sha256: str | None = None) -> MovieLens:
    """The interactions of the sequence file at `path` (module docstring); `name` defaults to the file's stem.
    With `sha256`, the file must have that digest (a copy that differs is refused, the digest named).

    Users and items are numbered in the order of their raw ids (numerically when every id is an integer); the
    raw ids stay in ``raw_user_ids`` / ``raw_item_ids``. Raises FileNotFoundError naming `path`, and
    MovieLensFormatError naming the file and line for a malformed line."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"path: {path} is not a file" + ("" if os.path.exists(path) else " (no such file)"))
    with open(path, "rb") as f:
        raw = f.read()
    if sha256 is not None and hashlib.sha256(raw).hexdigest() != sha256:
        raise MovieLensFormatError(f"{path}: sha256 {hashlib.sha256(raw).hexdigest()} differs from the pinned {sha256}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MovieLensFormatError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    if name is None:
        name = os.path.splitext(os.path.basename(path))[0]
    return parse_sequence_text(text, path, name=name)


def parse_sequence_text(text: str, where: str, *, name: str) -> MovieLens:
    """The dataset of a sequence file's text; `where` names the file in errors."""
    users: list[str] = []
    items: list[str] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise MovieLensFormatError(
                f"{where}: line {lineno}: expected 2 whitespace-separated fields (user item), got {len(fields)}: "
                f"{line[:80]!r}"
            )
        users.append(fields[0])
        items.append(fields[1])
    if not users:
        raise MovieLensFormatError(f"{where}: no data lines")
    raw_users, user = _numbered(users)
    raw_items, item = _numbered(items)
    # time = position within the user's sequence: a stable sort by user keeps each user's lines in file order
    order = np.argsort(user, kind="stable")
    counts = np.bincount(user, minlength=len(raw_users))
    position = np.empty(len(user), np.int64)
    position[order] = np.arange(len(user)) - np.repeat(np.cumsum(counts) - counts, counts)
    return MovieLens(
        name=name,
        user=user,
        item=item,
        rating=np.ones(len(user), np.float32),
        timestamp=position,
        num_users=len(raw_users),
        num_items=len(raw_items),
        item_titles=[],
        genre_names=(),
        raw_user_ids=raw_users,
        raw_item_ids=raw_items,
    )


_INT64 = (-(2**63), 2**63 - 1)


def _is_int64(text: str) -> bool:
    """Whether `text` is a decimal integer in ASCII digits that fits int64 (so it converts exactly, and back)."""
    digits = text[1:] if text.startswith("-") else text
    return digits.isascii() and digits.isdigit() and _INT64[0] <= int(text) <= _INT64[1]


def _numbered(ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(the distinct raw ids in order, each entry's 0-based index); integers when every id is an ASCII decimal
    integer that fits int64 and is written as Python writes it (no leading zeros or "-0", so two different
    tokens never become one id), else the tokens as strings."""
    values = np.array(ids)
    distinct = set(ids)
    if all(_is_int64(v) and str(int(v)) == v for v in distinct):
        values = values.astype(np.int64)
    raw, index = np.unique(values, return_inverse=True)
    return (raw if raw.dtype == np.int64 else raw.astype(object)), index.astype(np.int64)
