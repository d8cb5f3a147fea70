"""Offline leave-one-out evaluation: its inputs, most-popular by hand, the large model's evaluation mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recengine.data import build_histories, leave_one_out
from recengine.eval.offline import eval_inputs, evaluate_pop, train_item_counts


def small_split():
    # training prefixes: u0 [0, 1, 2], u1 [1, 2], u2 [2]; u0 validates 3 / tests 4; u1: 3 / 0; u2: 4 / 1
    seqs = [[0, 1, 2, 3, 4], [1, 2, 3, 0], [2, 4, 1]]
    user = np.concatenate([[u] * len(s) for u, s in enumerate(seqs)])
    item = np.concatenate(seqs)
    ts = np.concatenate([np.arange(len(s)) for s in seqs])
    return leave_one_out(build_histories(user, item, ts, 3, 6))


def test_train_item_counts():
    assert train_item_counts(small_split()).tolist() == [1, 2, 3, 0, 0, 0]


def test_eval_inputs_exclude_the_prefix_before_the_target():
    users, targets, offsets, ids = eval_inputs(small_split(), "test")
    assert users.tolist() == [0, 1, 2] and targets.tolist() == [4, 0, 1]
    assert offsets.tolist() == [0, 4, 7, 9] and ids.tolist() == [0, 1, 2, 3, 1, 2, 3, 2, 4]
    assert offsets.dtype == ids.dtype == torch.int64


def test_pop_test_target_by_hand():
    # popularity order 2, 1, 0, 3, 4, 5 minus each user's seen items (prefix + validation item)
    #   u0 sees {0,1,2,3} -> ranking 4, 5     : target 4 at rank 0
    #   u1 sees {1,2,3}   -> ranking 0, 4, 5  : target 0 at rank 0
    #   u2 sees {2,4}     -> ranking 1, 0, 3  : target 1 at rank 0
    assert evaluate_pop(small_split(), "test", ks=(1,))["hr@1"] == 1.0


def test_pop_valid_target_by_hand():
    # u0 sees {0,1,2} -> 3 first; u1 sees {1,2} -> 0, 3: target 3 at rank 1; u2 sees {2}: 1, 0, 3, 4 -> 4 at 3
    m = evaluate_pop(small_split(), "valid", ks=(2,))
    assert m["hr@2"] == pytest.approx(2 / 3)
    assert m["mrr@2"] == pytest.approx((1 + 1 / 2) / 3)


def test_history_ranked_too_when_not_excluded():
    users, targets, offsets, ids = eval_inputs(small_split(), "test", exclude_seen=False)
    assert offsets.tolist() == [0, 0, 0, 0] and ids.numel() == 0
    # popularity order 2, 1, 0, 3, 4, 5 over the whole catalog: u0's 4 at rank 4, u1's 0 at 2, u2's 1 at 1
    m = evaluate_pop(small_split(), "test", ks=(5,), exclude_seen=False)
    assert m["hr@5"] == 1.0
    assert m["mrr@5"] == pytest.approx((1 / 5 + 1 / 3 + 1 / 2) / 3)
    assert m["ndcg@5"] == pytest.approx((1 / np.log2(6) + 1 / np.log2(4) + 1 / np.log2(3)) / 3)
