"""Histories, the leave-one-out split, padded windows, exclusion lists, jagged feature batches, synthetic data."""

from __future__ import annotations

import numpy as np
import pytest

from recengine.data import (
    build_histories,
    gather_csr,
    histories_of,
    item_feature_bags,
    jagged_tables,
    last_windows,
    leave_one_out,
    make_synthetic,
    training_windows,
    user_feature_bags,
)
from recengine.padding import PAD_ID


def small():
    # user 0: items 5,3,7,1 at times 10,20,20,40 (3 and 7 tie: file order kept); user 1: 2 events; user 2: none
    user = np.array([0, 1, 0, 0, 1, 0])
    item = np.array([3, 4, 7, 5, 6, 1])
    ts = np.array([20, 5, 20, 10, 1, 40])
    return build_histories(user, item, ts, num_users=3, num_items=8)


def test_histories_are_chronological_and_stable():
    h = small()
    np.testing.assert_array_equal(h.offsets, [0, 4, 6, 6])
    assert h.of(0).tolist() == [5, 3, 7, 1]
    assert h.of(1).tolist() == [6, 4]
    assert h.of(2).tolist() == []
    np.testing.assert_array_equal(h.lengths, [4, 2, 0])


def test_build_histories_rejects_bad_ids():
    with pytest.raises(IndexError, match="item"):
        build_histories(np.array([0]), np.array([8]), np.array([0]), num_users=1, num_items=8)
    with pytest.raises(IndexError, match="user"):
        build_histories(np.array([3]), np.array([0]), np.array([0]), num_users=3, num_items=8)


def test_leave_one_out():
    s = leave_one_out(small())
    h = s.histories
    # user 0 (4 events): train [5, 3], valid 7, test 1; users 1 and 2 (< 3 events): train only, no targets
    assert h.items[h.offsets[0] : s.train_end[0]].tolist() == [5, 3]
    assert (s.valid_target.tolist(), s.test_target.tolist()) == ([7, PAD_ID, PAD_ID], [1, PAD_ID, PAD_ID])
    assert h.items[h.offsets[1] : s.train_end[1]].tolist() == [6, 4]
    assert s.eval_users.tolist() == [0]
    assert s.prefix_end("valid")[0] == 2 and s.prefix_end("test")[0] == 3
    with pytest.raises(ValueError):
        s.prefix_end("train")


def test_leave_one_out_never_leaks_targets_into_training():
    d = make_synthetic(50, 40, seed=3)
    s = leave_one_out(histories_of(d))
    h = s.histories
    for u in s.eval_users:
        full = h.of(u).tolist()
        train = h.items[h.offsets[u] : s.train_end[u]].tolist()
        assert train + [s.valid_target[u], s.test_target[u]] == full


def test_last_windows_left_aligned():
    items = np.arange(10)
    w, n = last_windows(items, np.array([0, 2, 5]), np.array([4, 3, 5]), max_len=3)
    np.testing.assert_array_equal(w, [[1, 2, 3], [2, PAD_ID, PAD_ID], [PAD_ID, PAD_ID, PAD_ID]])
    np.testing.assert_array_equal(n, [3, 1, 0])


def test_training_windows_cover_every_target_once():
    rng = np.random.default_rng(0)
    items = rng.integers(0, 100, size=60)
    starts, ends = np.array([0, 25, 27]), np.array([25, 27, 60])
    for max_len in (1, 4, 10, 40):
        x, y, owner = training_windows(items, starts, ends, max_len)
        assert x.shape == y.shape == (len(owner), max_len)
        got = []
        for r in range(len(owner)):
            s, e = starts[owner[r]], ends[owner[r]]
            seq = items[s:e].tolist()
            n = int((x[r] != PAD_ID).sum())
            assert (x[r, :n] != PAD_ID).all() and (x[r, n:] == PAD_ID).all() and (y[r, n:] == PAD_ID).all()
            # inputs and targets are consecutive slices of the user's sequence, targets shifted by one
            joined = x[r, :n].tolist() + [y[r, n - 1]]
            assert any(seq[i : i + n + 1] == joined for i in range(len(seq) - n))
            assert y[r, :n].tolist() == joined[1:]
            got += [(owner[r], t) for t in y[r, :n].tolist()]
        want = [(r, t) for r in range(3) for t in items[starts[r] + 1 : ends[r]].tolist()]
        assert sorted(got) == sorted(want)  # every next-item target exactly once (default stride = max_len)


def test_training_windows_overlap_with_smaller_stride():
    items = np.arange(20)
    x, y, owner = training_windows(items, np.array([0]), np.array([20]), max_len=8, stride=4)
    assert y[0].tolist() == list(range(12, 20))  # the first window ends at the sequence end
    assert y[1].tolist() == list(range(8, 16))


def test_gather_csr():
    offsets, ids = gather_csr(np.arange(10) * 2, np.array([1, 5, 5]), np.array([3, 5, 8]))
    assert offsets.tolist() == [0, 2, 2, 5]
    assert ids.tolist() == [2, 4, 10, 12, 14]
    with pytest.raises(ValueError):
        gather_csr(np.arange(3), np.array([2]), np.array([1]))


def test_jagged_tables_is_table_major():
    a = (np.array([0, 2, 2, 3]), np.array([1, 2, 3]))  # table 0: bags [1,2], [], [3]
    b = (np.array([0, 1, 2, 3]), np.array([7, 8, 9]))  # table 1: one id per row
    ids, offsets = jagged_tables([a, b])
    assert ids.tolist() == [1, 2, 3, 7, 8, 9]
    assert offsets.tolist() == [0, 2, 2, 3, 4, 5, 6]
    with pytest.raises(ValueError):
        jagged_tables([a, (np.array([0, 1]), np.array([1]))])


def test_feature_bags_of_synthetic():
    d = make_synthetic(20, 30, seed=1)
    tables, ids, offsets = item_feature_bags(d)
    assert [t[0] for t in tables] == ["genre", "year"]
    assert offsets.shape == (2 * 30 + 1,)
    assert ids[offsets[30] :].tolist() == d.item_features["year"].tolist()
    ids, offsets = user_feature_bags(d, np.array([3, 0]))
    assert offsets.tolist() == list(range(7))  # 3 tables x 2 users, one id each
    assert ids.tolist()[:2] == d.user_features["age"][[3, 0]].tolist()


def test_synthetic_is_seeded_and_valid():
    a, b, c = make_synthetic(40, 50, seed=7), make_synthetic(40, 50, seed=7), make_synthetic(40, 50, seed=8)
    np.testing.assert_array_equal(a.item, b.item)
    np.testing.assert_array_equal(a.timestamp, b.timestamp)
    assert not np.array_equal(a.item, c.item)
    h = histories_of(a)
    assert h.lengths.min() >= 10 and h.lengths.max() <= 50
    for u in range(a.num_users):  # no repeated items in a history, timestamps strictly increasing
        assert len(set(h.of(u).tolist())) == h.lengths[u]
        t = h.timestamps[h.offsets[u] : h.offsets[u + 1]]
        assert (np.diff(t) > 0).all()
    assert a.user.max() < a.num_users and a.item.max() < a.num_items


def test_split_digest_names_the_split():
    from recengine.data import build_histories, leave_one_out

    user = np.array([0, 0, 0, 1, 1, 1])
    a = leave_one_out(build_histories(user, np.array([0, 1, 2, 2, 1, 0]), np.arange(6), 2, 3))
    b = leave_one_out(build_histories(user, np.array([0, 1, 2, 2, 1, 0]), np.arange(6), 2, 3))
    c = leave_one_out(build_histories(user, np.array([0, 2, 1, 2, 1, 0]), np.arange(6), 2, 3))
    assert a.digest() == b.digest() != c.digest() and len(a.digest()) == 64
