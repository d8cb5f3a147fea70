"""Per-user chronological histories, the leave-one-out split, padded windows and jagged feature batches.

Conventions used everywhere in recengine:

* item ids are 0-based, ``0 .. num_items-1``; ``PAD_ID = -1`` fills unused slots of a padded sequence;
* a padded sequence is LEFT-aligned: row ``r`` holds its items in slots ``0 .. length[r]-1`` (oldest first)
  and ``PAD_ID`` after them, so a causal encoder's state for the most recent item is at ``length[r]-1``;
* a target of ``PAD_ID`` means "no loss here".

Loops over users and events that NumPy cannot vectorise are numba-compiled.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numba
import numpy as np

from recengine.padding import PAD_ID


@dataclass
class Histories:
    """Each user's items in time order, as CSR: user u's items are ``items[offsets[u]:offsets[u+1]]``."""

    offsets: np.ndarray  # (num_users+1,) int64
    items: np.ndarray  # (num_events,) int64
    timestamps: np.ndarray  # (num_events,) int64
    num_items: int

    @property
    def num_users(self) -> int:
        return int(self.offsets.shape[0] - 1)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def of(self, user: int) -> np.ndarray:
        return self.items[self.offsets[user] : self.offsets[user + 1]]


def build_histories(
    user: np.ndarray, item: np.ndarray, timestamp: np.ndarray, num_users: int, num_items: int
) -> Histories:
    """Group interactions by user, ordered by timestamp; ties keep the input order (a stable sort)."""
    user = np.asarray(user, dtype=np.int64)
    item = np.asarray(item, dtype=np.int64)
    timestamp = np.asarray(timestamp, dtype=np.int64)
    if not (user.shape == item.shape == timestamp.shape) or user.ndim != 1:
        raise ValueError(
            f"user, item, timestamp must be 1-D of one length, got {user.shape}, {item.shape}, {timestamp.shape}"
        )
    if user.size and (user.min() < 0 or user.max() >= num_users):
        raise IndexError(f"user ids must lie in [0, {num_users}), got range [{user.min()}, {user.max()}]")
    if item.size and (item.min() < 0 or item.max() >= num_items):
        raise IndexError(f"item ids must lie in [0, {num_items}), got range [{item.min()}, {item.max()}]")
    order = np.lexsort((timestamp, user))  # lexsort is stable: equal (user, time) keep file order
    counts = np.bincount(user, minlength=num_users)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return Histories(offsets, item[order], timestamp[order], num_items)


def histories_of(data) -> Histories:
    """Histories of a MovieLens-like object (``user``, ``item``, ``timestamp``, ``num_users``, ``num_items``)."""
    return build_histories(data.user, data.item, data.timestamp, data.num_users, data.num_items)


@dataclass
class LeaveOneOut:
    """The leave-one-out split of full histories.

    For every user with at least 3 events, the last one is the test target and the second-to-last the
    validation target; the rest is training. Users with fewer events train on all of them and are not
    evaluated (their targets are PAD_ID). Everything indexes ``histories``: user u trains on
    ``items[offsets[u]:train_end[u]]``; validation predicts ``items[train_end[u]]`` from that prefix and
    test predicts ``items[train_end[u]+1]`` from the prefix plus the validation item.
    """

    histories: Histories
    train_end: np.ndarray  # (U,) int64, exclusive end of the training prefix in histories.items
    valid_target: np.ndarray  # (U,) int64 or PAD_ID
    test_target: np.ndarray  # (U,) int64 or PAD_ID

    @property
    def eval_users(self) -> np.ndarray:
        """Users that have validation and test targets."""
        return np.flatnonzero(self.test_target != PAD_ID)

    def prefix_end(self, which: str) -> np.ndarray:
        """Exclusive end (into histories.items) of what a model may see when predicting `which` target."""
        if which == "valid":
            return self.train_end
        if which == "test":
            return np.where(self.test_target != PAD_ID, self.train_end + 1, self.train_end)
        raise ValueError(f"which must be 'valid' or 'test', got {which!r}")

    def digest(self) -> str:
        """sha256 of everything the split decides (each user's ordered items, the prefix ends, both targets): two
        runs whose digests agree trained and were judged on the same split."""
        h = hashlib.sha256()
        for array in (
            self.histories.items,
            self.histories.offsets,
            self.train_end,
            self.valid_target,
            self.test_target,
        ):
            h.update(np.ascontiguousarray(array, dtype=np.int64).tobytes())
        return h.hexdigest()

    def target(self, which: str) -> np.ndarray:
        if which not in ("valid", "test"):
            raise ValueError(f"which must be 'valid' or 'test', got {which!r}")
        return self.valid_target if which == "valid" else self.test_target


def leave_one_out(histories: Histories) -> LeaveOneOut:
    starts, ends = histories.offsets[:-1], histories.offsets[1:]
    n = ends - starts
    evaluated = n >= 3
    train_end = np.where(evaluated, ends - 2, ends).astype(np.int64)
    valid_target = np.where(evaluated, histories.items[np.minimum(ends - 2, len(histories.items) - 1)], PAD_ID)
    test_target = np.where(evaluated, histories.items[np.maximum(ends - 1, 0)], PAD_ID)
    if histories.items.size == 0:
        valid_target = test_target = np.full(len(n), PAD_ID)
    return LeaveOneOut(histories, train_end, valid_target.astype(np.int64), test_target.astype(np.int64))


# --------------------------------------------------------------------------------- padded windows
@numba.njit(cache=True)
def _last_windows(items, starts, ends, max_len):
    rows = starts.shape[0]
    out = np.full((rows, max_len), -1, dtype=np.int64)
    lengths = np.zeros(rows, dtype=np.int64)
    for r in range(rows):
        begin = max(starts[r], ends[r] - max_len)
        n = ends[r] - begin
        for j in range(n):
            out[r, j] = items[begin + j]
        lengths[r] = n
    return out, lengths


def last_windows(items: np.ndarray, starts: np.ndarray, ends: np.ndarray, max_len: int):
    """The last `max_len` items of each ``items[starts[r]:ends[r]]``, left-aligned, PAD_ID-filled.

    Returns (windows (R, max_len) int64, lengths (R,) int64)."""
    starts = np.ascontiguousarray(starts, dtype=np.int64)
    ends = np.ascontiguousarray(ends, dtype=np.int64)
    if np.any(ends < starts):
        raise ValueError("every end must be >= its start")
    return _last_windows(np.ascontiguousarray(items, dtype=np.int64), starts, ends, int(max_len))


@numba.njit(cache=True)
def _count_training_windows(starts, ends, max_len, stride):
    total = 0
    for r in range(starts.shape[0]):
        e = ends[r]
        while e - starts[r] >= 2:
            total += 1
            e -= stride
    return total


@numba.njit(cache=True)
def _training_windows(items, starts, ends, max_len, stride, total):
    inputs = np.full((total, max_len), -1, dtype=np.int64)
    targets = np.full((total, max_len), -1, dtype=np.int64)
    owner = np.zeros(total, dtype=np.int64)
    w = 0
    for r in range(starts.shape[0]):
        e = ends[r]
        while e - starts[r] >= 2:
            begin = max(starts[r], e - max_len - 1)
            n = e - begin - 1
            for j in range(n):
                inputs[w, j] = items[begin + j]
                targets[w, j] = items[begin + j + 1]
            owner[w] = r
            w += 1
            e -= stride
    return inputs, targets, owner


def training_windows(items: np.ndarray, starts: np.ndarray, ends: np.ndarray, max_len: int, stride: int | None = None):
    """Next-item training windows over each sequence ``items[starts[r]:ends[r]]``.

    A window ending at e has inputs ``items[e-max_len-1 : e-1]`` and targets shifted by one
    (``items[e-max_len : e]``), left-aligned and PAD_ID-filled; windows end at ``ends[r]``, ``ends[r]-stride``, ...
    (default stride = max_len, so every event is a target once, each with up to max_len items of context
    inside its window). Returns (inputs (W, L), targets (W, L), owner (W,) = the row r each window came from).
    """
    stride = int(stride or max_len)
    if max_len < 1 or stride < 1:
        raise ValueError(f"max_len and stride must be >= 1, got {max_len}, {stride}")
    starts = np.ascontiguousarray(starts, dtype=np.int64)
    ends = np.ascontiguousarray(ends, dtype=np.int64)
    total = _count_training_windows(starts, ends, max_len, stride)
    return _training_windows(np.ascontiguousarray(items, dtype=np.int64), starts, ends, int(max_len), stride, total)


# ------------------------------------------------------------------------------------- exclusion
@numba.njit(cache=True)
def _gather_csr(items, starts, ends):
    rows = starts.shape[0]
    offsets = np.zeros(rows + 1, dtype=np.int64)
    for r in range(rows):
        offsets[r + 1] = offsets[r] + (ends[r] - starts[r])
    out = np.empty(offsets[rows], dtype=np.int64)
    for r in range(rows):
        n = ends[r] - starts[r]
        for j in range(n):
            out[offsets[r] + j] = items[starts[r] + j]
    return offsets, out


def gather_csr(items: np.ndarray, starts: np.ndarray, ends: np.ndarray):
    """CSR (offsets (R+1,), ids) of the slices ``items[starts[r]:ends[r]]``: e.g. each user's seen items to exclude."""
    starts = np.ascontiguousarray(starts, dtype=np.int64)
    ends = np.ascontiguousarray(ends, dtype=np.int64)
    if np.any(ends < starts):
        raise ValueError("every end must be >= its start")
    return _gather_csr(np.ascontiguousarray(items, dtype=np.int64), starts, ends)


# ------------------------------------------------------------------------------- jagged features
def jagged_tables(columns: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Stack per-table CSR bags into the table-major jagged input of recengine.ops.embedding_bag.

    `columns[t]` = (offsets (B+1,), ids) of table t over the same B rows. Returns (ids, offsets (T*B+1,)),
    where the bag of row b in table t is ``ids[offsets[t*B+b]:offsets[t*B+b+1]]``.
    """
    if not columns:
        raise ValueError("need at least one table")
    b = columns[0][0].shape[0] - 1
    ids, offsets, base = [], [np.zeros(1, dtype=np.int64)], 0
    for t, (off, col) in enumerate(columns):
        off = np.asarray(off, dtype=np.int64)
        if off.shape[0] - 1 != b:
            raise ValueError(f"table {t} has {off.shape[0] - 1} bags, table 0 has {b}")
        ids.append(np.asarray(col, dtype=np.int64)[off[0] : off[-1]])
        offsets.append(off[1:] - off[0] + base)
        base += int(off[-1] - off[0])
    return np.concatenate(ids), np.concatenate(offsets)


def single_id_bags(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One id per row as a CSR bag column (offsets 0..B, ids)."""
    ids = np.asarray(ids, dtype=np.int64)
    return np.arange(ids.shape[0] + 1, dtype=np.int64), ids


def item_feature_bags(data) -> tuple[list[tuple[str, int]], np.ndarray, np.ndarray]:
    """The item side features of a MovieLens-like dataset for ALL items, as one jagged batch.

    Returns (tables [(name, num_rows)], ids, offsets (T*num_items+1,)): table "genre" (a multi-hot bag per item)
    and "year" (one bucket per item)."""
    f = data.item_features
    columns = [(f["genre_offsets"], f["genre_ids"]), single_id_bags(f["year"])]
    tables = [("genre", int(data.item_feature_sizes["genre"])), ("year", int(data.item_feature_sizes["year"]))]
    ids, offsets = jagged_tables(columns)
    return tables, ids, offsets


def user_feature_tables(data) -> list[tuple[str, int]]:
    """(name, num_rows) of each user feature table, in the order user_feature_bags stacks them."""
    return [(name, int(data.user_feature_sizes[name])) for name in sorted(data.user_features)]


def user_feature_bags(data, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Jagged batch (ids, offsets (T*B+1,)) of the user feature tables (one id per table) for `users`."""
    users = np.asarray(users, dtype=np.int64)
    columns = [single_id_bags(data.user_features[name][users]) for name in sorted(data.user_features)]
    return jagged_tables(columns)
