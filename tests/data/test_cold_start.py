"""The cold-start split: cold items never reach training, the test events are labelled cold or warm."""

from __future__ import annotations

import numpy as np
import pytest

from recengine.data.cold_start import choose_cold_items, cold_start_split
from recengine.data.synthetic import make_synthetic
from recengine.padding import PAD_ID


@pytest.fixture(scope="module")
def data():
    return make_synthetic(num_users=60, num_items=50, min_len=5, max_len=20, seed=3)


def test_no_cold_item_occurs_in_the_training_split(data):
    split = cold_start_split(data, 0.2, seed=1)
    h = split.train.histories
    assert not np.isin(h.items, split.cold_items).any()


def test_cold_target_marks_exactly_the_users_whose_test_item_is_cold(data):
    split = cold_start_split(data, 0.2, seed=1)
    target = split.test.test_target
    expected = (target != PAD_ID) & np.isin(target, split.cold_items)
    np.testing.assert_array_equal(split.cold_target, expected)


def test_a_warm_test_event_is_the_held_out_test_event_of_the_warm_only_split(data):
    split = cold_start_split(data, 0.2, seed=1)
    warm_users = split.eval_users[~split.cold_target[split.eval_users]]
    warm_users = warm_users[split.train.test_target[warm_users] != PAD_ID]  # enough warm events to hold one out
    # the same event, so it is never a training target or input (the warm split holds it out)
    np.testing.assert_array_equal(split.train.test_target[warm_users], split.test.test_target[warm_users])
    assert warm_users.size > 0


def test_the_share_and_seed_fix_the_cold_items(data):
    a = choose_cold_items(data.item, data.num_items, 0.2, 5)
    b = choose_cold_items(data.item, data.num_items, 0.2, 5)
    np.testing.assert_array_equal(a, b)
    assert a.size == round(0.2 * np.unique(data.item).size)
    assert not np.array_equal(a, choose_cold_items(data.item, data.num_items, 0.2, 6))


@pytest.mark.parametrize(("share", "seed"), [(0.0, 0), (1.0, 0), (-0.1, 0), ("0.1", 0), (0.1, -1), (True, 0)])
def test_bad_share_or_seed_is_rejected(data, share, seed):
    with pytest.raises(ValueError, match="share|seed"):
        choose_cold_items(data.item, data.num_items, share, seed)


def test_cold_events_are_every_cold_event_after_a_users_first(data):
    split = cold_start_split(data, 0.2, seed=1)
    h = split.test.histories
    expected = [
        (u, end)
        for u in range(h.num_users)
        for end in range(h.offsets[u] + 1, h.offsets[u + 1])
        if h.items[end] in split.cold_items
    ]
    users, ends = split.cold_events
    assert list(zip(users.tolist(), ends.tolist())) == expected
    assert len(expected) > split.cold_target.sum()  # more than the cold test targets
