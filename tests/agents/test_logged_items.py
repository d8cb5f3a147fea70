"""The logged-items exclusion: the visible history and the user's logged items, per row."""

import numpy as np
import pytest
import torch

from recengine.agents.logged_items import LoggedItems
from recengine.data.sequences import Histories, leave_one_out


def test_union_of_history_and_logged_items():
    known = LoggedItems(np.array([0, 2, 2, 5]), np.array([7, 8, 1, 2, 3]))
    hist = torch.tensor([[-1, 4], [5, 6], [-1, -1]])
    offsets, ids = known.exclusion({"history": hist.numpy(), "user_id": np.array([2, 0, 1])})
    rows = [set(ids[offsets[b] : offsets[b + 1]].tolist()) for b in range(3)]
    assert rows == [{4, 1, 2, 3}, {5, 6, 7, 8}, set()]


def test_a_bare_history_excludes_the_history_only():
    known = LoggedItems(np.array([0, 1]), np.array([3]))
    offsets, ids = known.exclusion(torch.tensor([[1, -1]]))
    assert offsets.tolist() == [0, 1] and ids.tolist() == [1]


def test_from_split_reads_the_train_prefixes_only():
    h = Histories(
        offsets=np.array([0, 4, 7]),
        items=np.array([0, 1, 2, 3, 4, 5, 6]),
        timestamps=np.arange(7),
        num_items=7,
    )
    split = leave_one_out(h)
    known = LoggedItems.from_split(split)
    assert known.items.tolist() == [0, 1, 4]  # the last two of each user are validation and test


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="offsets"):
        LoggedItems(np.array([1, 2]), np.array([0]))
    known = LoggedItems(np.array([0, 1]), np.array([0]))
    with pytest.raises(IndexError, match="user ids"):
        known.exclusion({"history": np.zeros((1, 2), np.int64), "user_id": np.array([5])})
