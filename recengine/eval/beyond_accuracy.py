"""Beyond-accuracy metrics of recommendation lists: catalog coverage, intra-list diversity, novelty, popularity bias.

Every function takes the lists as an (R, k) int array ``lists``: row r is one slate or one user's top-k list,
item ids in ``[0, num_items)``, ``recengine.padding.PAD_ID`` (-1) for an empty slot (a row may hold fewer than k
items; padding is ignored everywhere). Each per-list metric returns one value per row (float64, NaN where the row
has too few items for it to be defined), so that its mean gets an interval from ``summarize`` (the normal
interval of ``recengine.eval.stats``); catalog coverage is one number for the whole set of lists and gets a
interval from a bootstrap over rows (or over groups of rows, e.g. the slates of one simulated session).

    coverage = catalog_coverage(lists, num_items)                     # share of the catalog shown at least once
    diversity = intra_list_diversity(lists, item_vectors)             # (R,) 1 - mean pairwise cosine
    novelty_per_list = novelty(lists, train_counts)                   # (R,) mean -log2 p(i), p from TRAIN counts
    bias = popularity_bias(lists, train_counts)                       # (R,) share of top-10%-popular items
    summarize(diversity)                                              # {"mean", "stderr", "ci_low", "ci_high", "n"}

Definitions (what each row value is):

* intra-list diversity: 1 − the mean cosine similarity over the row's unordered pairs of (non-padding) items,
  the items described by any (N, d) matrix: item embeddings, or the multi-hot genre vectors of ``genre_vectors``
  (for 0/1 vectors the cosine is |A ∩ B| / sqrt(|A| · |B|)), or sparse ones (``SparseVectors``, e.g. TF-IDF
  bags of title words). An item whose vector is all zeros (no genre) has similarity 0 with every item. A row
  with fewer than two items (k = 1, or padding) has no pair: NaN.
* novelty: the mean self-information −log2 p(i) of the row's items, p(i) = (c_i + α) / (Σ c + α · N) from the
  TRAIN interaction counts c with additive smoothing α (default 1), so an item never seen in training gets the
  largest finite value, −log2(α / (Σ c + α · N)), instead of infinity. An empty row: NaN.
* popularity bias: the share of the row's items among the ``ceil(share · N)`` most popular items by TRAIN count
  (share 0.1: the top 10%; ties at the boundary go to the lower item id). An empty row: NaN.
* catalog coverage: distinct items recommended at least once / N (an empty set of lists covers 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from recengine.eval.stats import mean_ci, z_value
from recengine.padding import PAD_ID


# --------------------------------------------------------------------------------------------- inputs
def check_lists(lists, num_items: int, name: str = "lists") -> np.ndarray:
    """`lists` as a (R, k) int64 array after checking it: 2-D, integer, ids in [0, num_items) or PAD_ID."""
    if isinstance(num_items, bool) or not isinstance(num_items, (int, np.integer)) or num_items < 1:
        raise ValueError(f"num_items: expected a positive integer, got {num_items!r}")
    try:
        arr = np.asarray(lists.cpu() if hasattr(lists, "cpu") else lists)
    except ValueError as exc:  # ragged rows
        raise ValueError(f"{name}: expected a (R, k) array of item ids (pad short rows with {PAD_ID})") from exc
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a (R, k) array of item ids, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name}: expected integer item ids, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    bad = (arr != PAD_ID) & ((arr < 0) | (arr >= num_items))
    if bad.any():
        raise IndexError(f"{name}: item id {int(arr[bad][0])} outside [0, {num_items}) (padding is {PAD_ID})")
    return arr


def _check_counts(train_counts, num_items: int | None = None) -> np.ndarray:
    counts = np.asarray(train_counts)
    if counts.ndim != 1 or counts.size == 0:
        raise ValueError(f"train_counts: expected a non-empty (N,) array of item counts, got shape {counts.shape}")
    if not np.issubdtype(counts.dtype, np.number) or not np.isfinite(counts).all() or (counts < 0).any():
        raise ValueError("train_counts: counts must be finite and >= 0")
    if num_items is not None and counts.size != num_items:
        raise ValueError(f"train_counts: expected {num_items} counts (one per item), got {counts.size}")
    return counts.astype(np.float64)


def _check_groups(groups, rows: int) -> np.ndarray:
    g = np.asarray(groups)
    if g.shape != (rows,) or (g.size and not np.issubdtype(g.dtype, np.integer)):
        raise ValueError(f"groups: expected ({rows},) integer group ids (one per row), got {g.dtype} {g.shape}")
    return g.astype(np.int64, copy=False)


def genre_vectors(genre_offsets, genre_ids, num_genres: int) -> np.ndarray:
    """(N, G) float64 multi-hot genre vectors from the genres as CSR (item i's genres are
    ``genre_ids[genre_offsets[i]:genre_offsets[i + 1]]``, the layout of the data loaders' item_features)."""
    offsets = np.asarray(genre_offsets, dtype=np.int64)
    ids = np.asarray(genre_ids, dtype=np.int64)
    if offsets.ndim != 1 or offsets.size < 1 or offsets[0] != 0 or offsets[-1] != ids.size:
        raise ValueError("genre_offsets: expected CSR offsets from 0 to len(genre_ids)")
    if (np.diff(offsets) < 0).any():
        raise ValueError("genre_offsets: expected non-decreasing CSR offsets from 0 to len(genre_ids)")
    if ids.size and (ids.min() < 0 or ids.max() >= num_genres):
        raise IndexError(f"genre_ids: genre ids must lie in [0, {num_genres})")
    out = np.zeros((offsets.size - 1, num_genres), dtype=np.float64)
    out[np.repeat(np.arange(offsets.size - 1), np.diff(offsets)), ids] = 1.0
    return out


# ------------------------------------------------------------------------------------------- coverage
def catalog_coverage(lists, num_items: int) -> float:
    """Share of the catalog's `num_items` items that appear in at least one row of `lists` (padding ignored)."""
    arr = check_lists(lists, num_items)
    shown = np.zeros(num_items, dtype=bool)
    shown[arr[arr != PAD_ID]] = True
    return float(shown.mean())


def coverage_resamples(
    lists, num_items: int, *, groups=None, num_resamples: int = 1000, seed: int = 0, chunk: int = 100
) -> np.ndarray:
    """(num_resamples,) catalog coverages of bootstrap resamples of the rows of `lists` (drawn with replacement,
    as many as there are), or of whole groups of rows when `groups` (R,) gives each row's group (e.g. its
    simulated session: the slates of one session are not independent). Seeded (numpy's default_rng(seed)); the
    resamples of several independent sets can be averaged before taking percentiles (see coverage_interval)."""
    arr = check_lists(lists, num_items)
    if num_resamples < 1:
        raise ValueError(f"num_resamples: need at least 1, got {num_resamples}")
    g = np.arange(arr.shape[0]) if groups is None else _check_groups(groups, arr.shape[0])
    _, g = np.unique(g, return_inverse=True)
    num_groups = int(g.max()) + 1 if g.size else 0
    if num_groups == 0:
        return np.zeros(num_resamples)
    valid = arr != PAD_ID
    member = np.zeros((num_groups, num_items), dtype=np.float32)  # group shows item
    member[np.broadcast_to(g[:, None], arr.shape)[valid], arr[valid]] = 1.0
    rng = np.random.default_rng(seed)
    out = np.empty(num_resamples)
    for start in range(0, num_resamples, chunk):
        n = min(chunk, num_resamples - start)
        draws = rng.integers(0, num_groups, size=(n, num_groups))
        flat = (np.arange(n)[:, None] * num_groups + draws).reshape(-1)
        weights = np.bincount(flat, minlength=n * num_groups).reshape(n, num_groups).astype(np.float32)
        out[start : start + n] = ((weights @ member) > 0).mean(axis=1)
    return out


def coverage_interval(value: float, resamples, level: float = 0.95) -> dict:
    """{"mean", "stderr", "ci_low", "ci_high", "n"}: `value` ± z · the standard deviation of its bootstrap
    `resamples` (the bootstrap standard error; n = the number of resamples), clipped to [0, 1].

    Not the resamples' percentiles: a resample holds only about 63% of the distinct rows, so its coverage is
    biased low and its percentile interval would mostly lie below the estimate."""
    r = np.asarray(resamples, dtype=np.float64).reshape(-1)
    if r.size == 0:
        raise ValueError("resamples: need at least one bootstrap resample")
    stderr = float(r.std(ddof=1)) if r.size > 1 else 0.0
    half = z_value(level) * stderr
    return {
        "mean": float(value),
        "stderr": stderr,
        "ci_low": max(0.0, float(value) - half),
        "ci_high": min(1.0, float(value) + half),
        "n": int(r.size),
    }


# ------------------------------------------------------------------------------------------ diversity
GATHER_LIMIT = 1 << 22
"""intra_list_diversity gathers at most this many vector elements (rows × k × d) at a time: wide item vectors
(e.g. TF-IDF over a title vocabulary) are measured in smaller blocks of rows, in bounded memory"""


@dataclass(frozen=True)
class SparseVectors:
    """N item vectors of width `dim` stored as CSR: item i has the values ``values[offsets[i]:offsets[i+1]]`` at
    the columns ``ids[...]`` (a column given twice adds up), e.g. TF-IDF bags of words
    (``recengine.data.item_text.TextBags``). `intra_list_diversity` measures them without building the dense
    (N, dim) matrix: its cost grows with the stored entries of the listed items, not with k · dim per list."""

    offsets: np.ndarray
    ids: np.ndarray
    values: np.ndarray
    dim: int

    def __post_init__(self):
        offsets = np.asarray(self.offsets, dtype=np.int64)
        ids, values = np.asarray(self.ids, dtype=np.int64), np.asarray(self.values, dtype=np.float64)
        if isinstance(self.dim, bool) or not isinstance(self.dim, (int, np.integer)) or self.dim < 0:
            raise ValueError(f"dim: expected an int >= 0, got {self.dim!r}")
        if offsets.ndim != 1 or offsets.size < 2 or offsets[0] != 0 or offsets[-1] != ids.size:
            raise ValueError("offsets: expected CSR offsets (N + 1,) from 0 to len(ids), N >= 1")
        if (np.diff(offsets) < 0).any():
            raise ValueError("offsets: expected non-decreasing CSR offsets")
        if ids.ndim != 1 or values.shape != ids.shape:
            raise ValueError(f"values: expected one value per id, shape {ids.shape}, got {values.shape}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.dim):
            raise IndexError(f"ids: column ids must lie in [0, {self.dim})")
        if not np.isfinite(values).all():
            raise ValueError("values: must be finite numbers")
        object.__setattr__(self, "offsets", offsets)
        object.__setattr__(self, "ids", ids)
        object.__setattr__(self, "values", values)

    @property
    def num_items(self) -> int:
        return int(self.offsets.size - 1)

    def dense(self) -> np.ndarray:
        """(N, dim) float64 matrix of the vectors (for inspection and tests)."""
        out = np.zeros((self.num_items, self.dim))
        np.add.at(out, (np.repeat(np.arange(self.num_items), np.diff(self.offsets)), self.ids), self.values)
        return out


def intra_list_diversity(lists, item_vectors, chunk: int = 4096) -> np.ndarray:
    """(R,) per row: 1 − the mean cosine similarity over its unordered pairs of items, the items described by
    the rows of `item_vectors` (N, d), or by `SparseVectors`; NaN for a row with fewer than two items. An all-zero
    vector (e.g. an item with no genre) has similarity 0 with every item. Rows are measured `chunk` at a time
    (fewer when dense vectors are wide, see GATHER_LIMIT); each row's value does not depend on the blocks."""
    if isinstance(item_vectors, SparseVectors):
        return _sparse_diversity(check_lists(lists, item_vectors.num_items), item_vectors, chunk)
    vectors = np.asarray(item_vectors.detach().cpu() if hasattr(item_vectors, "detach") else item_vectors)
    if vectors.ndim != 2 or vectors.shape[0] < 1:
        raise ValueError(f"item_vectors: expected an (N, d) matrix, got shape {vectors.shape}")
    if not np.issubdtype(vectors.dtype, np.number) or not np.isfinite(vectors).all():
        raise ValueError("item_vectors: must be finite numbers")
    arr = check_lists(lists, vectors.shape[0])
    norms = np.linalg.norm(vectors.astype(np.float64), axis=1, keepdims=True)
    unit = np.divide(vectors, norms, out=np.zeros(vectors.shape, dtype=np.float64), where=norms > 0)
    out = np.full(arr.shape[0], np.nan)
    chunk = max(1, min(chunk, GATHER_LIMIT // max(arr.shape[1] * vectors.shape[1], 1)))
    for start in range(0, arr.shape[0], chunk):
        block = arr[start : start + chunk]
        valid = block != PAD_ID
        v = unit[np.where(valid, block, 0)] * valid[..., None]  # (b, k, d), padding as zero vectors
        m = valid.sum(1).astype(np.float64)
        # sum over ordered pairs i != j of <v_i, v_j> = |sum_i v_i|^2 - sum_i |v_i|^2
        pair_sum = (v.sum(1) ** 2).sum(1) - (v**2).sum((1, 2))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start : start + chunk] = np.where(m >= 2, 1.0 - pair_sum / (m * (m - 1)), np.nan)
    return out


def _sums_by_key(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct keys sorted, the sum of the values of each)."""
    if keys.size == 0:
        return keys, values.astype(np.float64)
    order = np.argsort(keys, kind="stable")
    keys, values = keys[order], values[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    return keys[starts], np.add.reduceat(values, starts)


def _sparse_diversity(arr: np.ndarray, sv: SparseVectors, chunk: int) -> np.ndarray:
    """intra_list_diversity of checked `arr` over sparse vectors: the same sum over ordered pairs,
    |sum_i v_i|^2 - sum_i |v_i|^2, with sum_i v_i accumulated per (row, column) over the listed items' entries."""
    lengths = np.diff(sv.offsets)
    entry_item = np.repeat(np.arange(sv.num_items), lengths)
    item_key, item_sums = _sums_by_key(entry_item * max(sv.dim, 1) + sv.ids, sv.values)  # a column twice adds up
    norms = np.sqrt(np.bincount(item_key // max(sv.dim, 1), weights=item_sums**2, minlength=sv.num_items))
    unit = np.divide(sv.values, norms[entry_item], out=np.zeros(sv.values.size), where=norms[entry_item] > 0)
    out = np.full(arr.shape[0], np.nan)
    for start in range(0, arr.shape[0], max(1, chunk)):
        block = arr[start : start + chunk]
        valid = block != PAD_ID
        rows, slots = np.nonzero(valid)
        items = block[rows, slots]
        count = lengths[items]  # the stored entries of each listed item, expanded below
        entry_row = np.repeat(rows, count)
        first = np.repeat(np.cumsum(count) - count, count)
        entry = np.repeat(sv.offsets[items], count) + np.arange(entry_row.size) - first
        key, column_sums = _sums_by_key(entry_row * max(sv.dim, 1) + sv.ids[entry], unit[entry])  # (row, column)
        b = block.shape[0]
        total = np.bincount(key // max(sv.dim, 1), weights=column_sums**2, minlength=b)
        own = np.bincount(rows, weights=(norms[items] > 0).astype(np.float64), minlength=b)  # |unit v_i|^2
        m = valid.sum(1).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start : start + chunk] = np.where(m >= 2, 1.0 - (total - own) / (m * (m - 1)), np.nan)
    return out


# --------------------------------------------------------------------------------------------- novelty
def self_information(train_counts, smoothing: float = 1.0) -> np.ndarray:
    """(N,) −log2 p(i) with p(i) = (c_i + smoothing) / (Σ c + smoothing · N) from the TRAIN counts c; smoothing
    > 0 keeps items unseen in training finite (the largest value)."""
    counts = _check_counts(train_counts)
    if not smoothing > 0:
        raise ValueError(f"smoothing: must be > 0 (else an unseen item is infinitely novel), got {smoothing}")
    p = (counts + smoothing) / (counts.sum() + smoothing * counts.size)
    return -np.log2(p)


def novelty(lists, train_counts, smoothing: float = 1.0) -> np.ndarray:
    """(R,) per row: the mean self-information of its items (see self_information); NaN for an empty row."""
    info = self_information(train_counts, smoothing)
    return _row_mean(check_lists(lists, info.size), info)


# ------------------------------------------------------------------------------------- popularity bias
def popular_items(train_counts, share: float = 0.1) -> np.ndarray:
    """(N,) bool: the ceil(share · N) items with the highest TRAIN counts (ties go to the lower item id)."""
    counts = _check_counts(train_counts)
    if not 0.0 < share <= 1.0:
        raise ValueError(f"share: expected a fraction in (0, 1], got {share}")
    top = max(1, math.ceil(share * counts.size - 1e-9))
    order = np.lexsort((np.arange(counts.size), -counts))  # count descending, then id ascending
    mask = np.zeros(counts.size, dtype=bool)
    mask[order[:top]] = True
    return mask


def popularity_bias(lists, train_counts, share: float = 0.1) -> np.ndarray:
    """(R,) per row: the share of its items among the `share` most popular ones (popular_items); NaN when empty."""
    popular = popular_items(train_counts, share).astype(np.float64)
    return _row_mean(check_lists(lists, popular.size), popular)


def _row_mean(arr: np.ndarray, per_item: np.ndarray) -> np.ndarray:
    valid = arr != PAD_ID
    total = np.where(valid, per_item[np.where(valid, arr, 0)], 0.0).sum(1)
    m = valid.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(m > 0, total / m, np.nan)


# ---------------------------------------------------------------------------------------- aggregation
def group_means(values, groups) -> np.ndarray:
    """The mean of the finite `values` (R,) within each group (groups (R,) integer ids), in the order of the
    sorted distinct group ids; NaN for a group without a finite value. Per-slate values -> per-session values."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    g = _check_groups(groups, v.size)
    _, inverse = np.unique(g, return_inverse=True)
    size = int(inverse.max()) + 1 if inverse.size else 0
    ok = np.isfinite(v)
    sums = np.bincount(inverse[ok], weights=v[ok], minlength=size)
    counts = np.bincount(inverse[ok], minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def summarize(values, level: float = 0.95) -> dict:
    """{"mean", "stderr", "ci_low", "ci_high", "n"} of the finite per-row `values` (recengine.eval.stats.mean_ci);
    the rows where the metric is undefined (NaN) are left out, and with none left every figure is NaN and n = 0."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    v = v[np.isfinite(v)]
    if v.size == 0:
        nan = float("nan")
        return {"mean": nan, "stderr": nan, "ci_low": nan, "ci_high": nan, "n": 0}
    return mean_ci(v, level)
