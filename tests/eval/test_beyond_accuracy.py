"""Beyond-accuracy metrics against hand-computed values on small cases, their edge cases and bad inputs."""

import math

import numpy as np
import pytest

from recengine.eval.beyond_accuracy import (
    SparseVectors,
    catalog_coverage,
    check_lists,
    coverage_interval,
    coverage_resamples,
    genre_vectors,
    group_means,
    intra_list_diversity,
    novelty,
    popular_items,
    popularity_bias,
    self_information,
    summarize,
)
from recengine.padding import PAD_ID

# 4 items in 3 genres: item 0 {0}, item 1 {0, 1}, item 2 {2}, item 3 no genre
GENRES = genre_vectors([0, 1, 3, 4, 4], [0, 0, 1, 2], 3)


def test_genre_vectors_are_multi_hot():
    assert GENRES.tolist() == [[1, 0, 0], [1, 1, 0], [0, 0, 1], [0, 0, 0]]


def test_catalog_coverage_counts_distinct_items():
    assert catalog_coverage([[0, 1], [1, 0]], 5) == pytest.approx(2 / 5)
    assert catalog_coverage([[0, 1, PAD_ID], [2, PAD_ID, PAD_ID]], 4) == pytest.approx(3 / 4)


def test_catalog_coverage_of_no_lists_is_zero():
    assert catalog_coverage(np.zeros((0, 3), dtype=np.int64), 4) == 0.0


def test_coverage_resamples_are_seeded_and_bounded_by_the_full_set():
    lists = [[0, 1], [2, 3], [4, 5], [0, 6]]
    a = coverage_resamples(lists, 10, num_resamples=200, seed=3)
    b = coverage_resamples(lists, 10, num_resamples=200, seed=3)
    assert np.array_equal(a, b) and a.shape == (200,)
    assert (a <= catalog_coverage(lists, 10) + 1e-12).all() and (a >= 2 / 10 - 1e-12).all()


def test_coverage_resamples_draw_whole_groups():
    # two groups that each show items {0, 1}: every resample covers exactly those 2 of 4 items
    r = coverage_resamples([[0, PAD_ID], [1, PAD_ID], [0, 1]], 4, groups=[7, 7, 9], num_resamples=50, seed=0)
    assert np.allclose(r, 0.5)


def test_coverage_interval_uses_the_bootstrap_standard_error():
    # resamples 0.2, 0.4, 0.6: sd 0.2, half-width 1.959964 * 0.2 = 0.391993 around the estimate, not the resamples
    ci = coverage_interval(0.7, [0.2, 0.4, 0.6])
    assert ci["mean"] == 0.7 and ci["stderr"] == pytest.approx(0.2) and ci["n"] == 3
    assert ci["ci_low"] == pytest.approx(0.7 - 0.391993, abs=1e-6) and ci["ci_high"] == 1.0  # clipped


def test_coverage_interval_of_identical_resamples_is_a_point():
    ci = coverage_interval(1.0, [1.0] * 10)
    assert ci["ci_low"] == ci["ci_high"] == 1.0


def test_diversity_by_genre_hand_values():
    # cos(0,1) = 1/sqrt(2); cos(0,2) = 0; cos(1,2) = 0  ->  1 - (1/sqrt2)/3
    d = intra_list_diversity([[0, 1, 2], [0, 0, PAD_ID]], GENRES)
    assert d[0] == pytest.approx(1 - (1 / math.sqrt(2)) / 3)
    assert d[1] == pytest.approx(0.0)  # the same item twice: identical


def test_diversity_of_an_item_without_genre_is_one():
    assert intra_list_diversity([[0, 3]], GENRES)[0] == pytest.approx(1.0)


def test_diversity_by_embedding_uses_cosine():
    vectors = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0], [-1.0, 0.0]])
    d = intra_list_diversity([[0, 1, PAD_ID], [0, 2, PAD_ID], [0, 3, PAD_ID], [0, 1, 2]], vectors)
    assert d.tolist() == pytest.approx([0.0, 1.0, 2.0, 1 - 1 / 3])


def test_wide_vectors_are_measured_in_smaller_blocks_with_the_same_values(monkeypatch):
    from recengine.eval import beyond_accuracy

    rng = np.random.default_rng(0)
    vectors = rng.random((30, 50))
    lists = rng.integers(0, 30, size=(37, 6))
    lists[::5, 3:] = PAD_ID
    whole = intra_list_diversity(lists, vectors)
    monkeypatch.setattr(beyond_accuracy, "GATHER_LIMIT", 6 * 50 * 4)  # 4 rows per block
    assert np.array_equal(intra_list_diversity(lists, vectors), whole)
    monkeypatch.setattr(beyond_accuracy, "GATHER_LIMIT", 1)  # never fewer than one row
    assert np.array_equal(intra_list_diversity(lists, vectors), whole)


def _random_sparse(seed: int, num_items: int = 25, dim: int = 9) -> SparseVectors:
    """Random sparse vectors: 0-4 entries per item (some items empty), a column sometimes given twice."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, 5, size=num_items)
    offsets = np.r_[0, np.cumsum(lengths)]
    return SparseVectors(offsets, rng.integers(0, dim, size=offsets[-1]), rng.normal(size=offsets[-1]), dim)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sparse_vectors_give_the_values_of_their_dense_matrix(seed):
    sv = _random_sparse(seed)
    rng = np.random.default_rng(10 + seed)
    lists = rng.integers(0, sv.num_items, size=(40, 5))
    lists[rng.random(lists.shape) < 0.2] = PAD_ID
    sparse = intra_list_diversity(lists, sv, chunk=7)  # several blocks
    dense = intra_list_diversity(lists, sv.dense())
    assert np.array_equal(np.isnan(sparse), np.isnan(dense))
    np.testing.assert_allclose(sparse[~np.isnan(dense)], dense[~np.isnan(dense)], rtol=0, atol=1e-12)


def test_sparse_diversity_hand_values():
    # item 0 = (1, 1, 0), item 1 = (2, 0, 2) as (1, 0) + (1, 2) on column 0 twice, item 2 = (0, 0, 5), item 3 empty
    sv = SparseVectors([0, 2, 5, 6, 6], [0, 1, 0, 2, 0, 2], [1.0, 1.0, 1.0, 2.0, 1.0, 5.0], 3)
    # cos(0,1) = 1/2, cos(0,2) = 0, cos(1,2) = 1/sqrt2, anything with item 3: 0
    d = intra_list_diversity([[0, 1, PAD_ID], [0, 3, PAD_ID], [0, 1, 2], [2, PAD_ID, PAD_ID]], sv)
    assert d[:3].tolist() == pytest.approx([0.5, 1.0, 1 - (0.5 + 1 / math.sqrt(2)) / 3]) and np.isnan(d[3])


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        (([0, 2], [0, 1], [1.0, 1.0], 1), IndexError, "ids"),
        (([0, 3], [0, 1], [1.0, 1.0], 2), ValueError, "offsets"),
        (([0, 2], [0, 1], [1.0], 2), ValueError, "values"),
        (([0, 1], [0], [math.inf], 2), ValueError, "values"),
        (([0, 1], [0], [1.0], -1), ValueError, "dim"),
    ],
)
def test_bad_sparse_vectors_name_the_argument(args, error, match):
    with pytest.raises(error, match=match):
        SparseVectors(*args)


@pytest.mark.parametrize("row", [[0, PAD_ID, PAD_ID], [PAD_ID, PAD_ID, PAD_ID]])
def test_diversity_undefined_below_two_items_is_nan(row):
    assert np.isnan(intra_list_diversity([row], GENRES)[0])


def test_diversity_of_single_item_lists_is_nan():
    assert np.isnan(intra_list_diversity([[0], [2]], GENRES)).all()


def test_self_information_with_add_one_smoothing():
    # counts 3, 1, 0: total 4, N 3 -> p = 4/7, 2/7, 1/7
    info = self_information([3, 1, 0])
    assert info.tolist() == pytest.approx([-math.log2(4 / 7), -math.log2(2 / 7), -math.log2(1 / 7)])


def test_novelty_is_the_mean_self_information_of_the_row():
    n = novelty([[0, 2], [1, PAD_ID], [PAD_ID, PAD_ID]], [3, 1, 0])
    assert n[0] == pytest.approx((-math.log2(4 / 7) - math.log2(1 / 7)) / 2)
    assert n[1] == pytest.approx(-math.log2(2 / 7))
    assert np.isnan(n[2])


def test_popular_items_top_share_ties_to_lower_id():
    counts = [5, 9, 9, 1, 0, 2, 3, 4, 7, 8, 6]  # N 11: ceil(1.1) = 2 items
    assert np.flatnonzero(popular_items(counts, 0.1)).tolist() == [1, 2]
    assert np.flatnonzero(popular_items([1, 1, 1, 1], 0.5)).tolist() == [0, 1]


def test_popularity_bias_hand_values():
    counts = [10, 0, 0, 0, 0, 0, 0, 0, 0, 0]  # the top 10% is item 0 alone
    b = popularity_bias([[0, 1], [2, 3], [0, PAD_ID]], counts)
    assert b.tolist() == pytest.approx([0.5, 0.0, 1.0])


def test_group_means_averages_finite_values_per_group():
    m = group_means([1.0, 3.0, np.nan, 4.0, np.nan], [2, 2, 5, 5, 8])
    assert m[:2].tolist() == [2.0, 4.0] and np.isnan(m[2])


def test_summarize_leaves_out_undefined_rows():
    s = summarize([1.0, np.nan, 3.0])
    assert s["n"] == 2 and s["mean"] == pytest.approx(2.0)
    empty = summarize([np.nan])
    assert empty["n"] == 0 and math.isnan(empty["mean"]) and math.isnan(empty["ci_low"])


def test_metrics_of_no_lists_are_empty():
    lists = np.zeros((0, 4), dtype=np.int64)
    assert intra_list_diversity(lists, GENRES).shape == (0,)
    assert novelty(lists, [1, 1, 1, 1]).shape == (0,)
    assert coverage_resamples(lists, 4, num_resamples=5).tolist() == [0.0] * 5


@pytest.mark.parametrize(
    ("lists", "error", "match"),
    [
        ([0, 1], ValueError, "lists: expected a \\(R, k\\)"),
        ([[0, 1], [2]], ValueError, "lists: expected a \\(R, k\\)"),
        ([[0.5, 1.0]], ValueError, "lists: expected integer"),
        ([[0, 4]], IndexError, "lists: item id 4"),
        ([[-2, 0]], IndexError, "lists: item id -2"),
    ],
)
def test_bad_lists_name_the_argument(lists, error, match):
    with pytest.raises(error, match=match):
        check_lists(lists, 4)


@pytest.mark.parametrize("num_items", [0, -1, 2.5, True])
def test_bad_num_items_is_rejected(num_items):
    with pytest.raises(ValueError, match="num_items"):
        catalog_coverage([[0]], num_items)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: novelty([[0]], [[1, 2]]), "train_counts"),
        (lambda: novelty([[0]], [1, -1]), "train_counts"),
        (lambda: self_information([1, 2], smoothing=0.0), "smoothing"),
        (lambda: popular_items([1, 2], share=0.0), "share"),
        (lambda: intra_list_diversity([[0, 1]], np.zeros(4)), "item_vectors"),
        (lambda: intra_list_diversity([[0, 1]], np.full((2, 2), np.nan)), "item_vectors"),
        (lambda: coverage_resamples([[0, 1]], 4, groups=[0, 1]), "groups"),
        (lambda: coverage_resamples([[0, 1]], 4, num_resamples=0), "num_resamples"),
        (lambda: coverage_interval(0.5, []), "resamples"),
        (lambda: genre_vectors([0, 2], [0], 3), "genre_offsets"),
    ],
)
def test_bad_arguments_are_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()
