"""HR/NDCG/MRR@K against hand-computed rankings."""

from __future__ import annotations

import math

import pytest
import torch

from recengine.eval.metrics import evaluate_ranking, metrics_from_ranks, rank_targets, target_ranks

# 6 items scored by Q = [1] against E = their score: item 0 best ... item 5 worst; items 2 and 3 tie
SCORES = torch.tensor([[6.0], [5.0], [4.0], [4.0], [2.0], [1.0]])


def test_target_ranks():
    top = torch.tensor([[4, 2, 9], [1, 2, 3], [7, 7, 7]])
    assert target_ranks(top, torch.tensor([2, 8, 7])).tolist() == [1, 3, 0]


def test_hand_computed_rankings():
    Q = torch.ones(5, 1)
    targets = torch.tensor([0, 2, 3, 3, 5])
    # user 0: nothing excluded, target 0 is first                              -> rank 0
    # user 1: {0} excluded; order 1, 2, 3 (tie 2/3 broken by lower id)         -> rank 1
    # user 2: {0} excluded; target 3 comes after 1 and 2                        -> rank 2
    # user 3: {0, 1, 2} excluded; 3 is first                                    -> rank 0
    # user 4: nothing excluded; 5 is last of 6                                  -> rank 5 (a miss at K = 3)
    offsets = torch.tensor([0, 0, 1, 2, 5, 5])
    ids = torch.tensor([0, 0, 0, 1, 2])
    ranks = rank_targets(Q, SCORES, targets, k=6, exclude_offsets=offsets, exclude_ids=ids)
    assert ranks.tolist() == [0, 1, 2, 0, 5]
    m = evaluate_ranking(Q, SCORES, targets, ks=(1, 3), exclude_offsets=offsets, exclude_ids=ids)
    assert m["hr@1"] == pytest.approx(2 / 5)
    assert m["hr@3"] == pytest.approx(4 / 5)
    assert m["ndcg@3"] == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(4) + 1) / 5)
    assert m["mrr@3"] == pytest.approx((1 + 1 / 2 + 1 / 3 + 1) / 5)
    assert m["ndcg@1"] == m["mrr@1"] == m["hr@1"]


def test_excluded_target_is_a_miss_and_bias_counts():
    Q = torch.ones(1, 1)
    m = evaluate_ranking(
        Q, SCORES, torch.tensor([0]), ks=(5,), exclude_offsets=torch.tensor([0, 1]), exclude_ids=torch.tensor([0])
    )
    assert m["hr@5"] == 0.0
    bias = torch.tensor([0.0, 0, 0, 0, 0, 10.0])  # lifts item 5 to the top
    assert rank_targets(Q, SCORES, torch.tensor([5]), k=3, bias=bias).tolist() == [0]


def test_batches_give_the_same_result():
    g = torch.Generator().manual_seed(0)
    Q, E = torch.randn(37, 4, generator=g), torch.randn(50, 4, generator=g)
    t = torch.randint(0, 50, (37,), generator=g)
    counts = torch.randint(0, 4, (37,), generator=g)
    offsets = torch.cat([torch.zeros(1, dtype=torch.int64), counts.cumsum(0)])
    ids = torch.randint(0, 50, (int(counts.sum()),), generator=g)
    a = rank_targets(Q, E, t, k=20, exclude_offsets=offsets, exclude_ids=ids, batch_size=1000)
    b = rank_targets(Q, E, t, k=20, exclude_offsets=offsets, exclude_ids=ids, batch_size=8)
    assert torch.equal(a, b)
    # and against a brute-force ranking
    logits = Q @ E.T
    for r in range(37):
        logits[r, ids[offsets[r] : offsets[r + 1]]] = -math.inf
    for r in range(37):
        row = logits[r]
        rank = int((row > row[t[r]]).sum() + ((row == row[t[r]]) & (torch.arange(50) < t[r])).sum())
        if row[t[r]] == -math.inf:
            rank = 20
        assert int(a[r]) == min(rank, 20)


def test_metrics_from_ranks():
    m = metrics_from_ranks(torch.tensor([0, 9, 10, 3]), ks=(10,))
    assert m["hr@10"] == pytest.approx(0.5 + 0.25)
    assert m["ndcg@10"] == pytest.approx((1 + 1 / math.log2(11) + 1 / math.log2(5)) / 4)
    assert m["mrr@10"] == pytest.approx((1 + 1 / 10 + 1 / 4) / 4)


@pytest.mark.parametrize(
    "batch, targets, error",
    [
        (1, [6], IndexError),  # a target outside the catalog
        (1, [-1], IndexError),  # a negative target
        (2, [1], ValueError),  # one target for two users
    ],
)
def test_bad_targets(batch, targets, error):
    with pytest.raises(error, match="targets"):
        rank_targets(torch.ones(batch, 1), SCORES, torch.tensor(targets), k=3)


def test_metric_keys_are_the_ones_metrics_from_ranks_reports():
    from recengine.eval.metrics import HR_AT_10, MRR_AT_10, NDCG_AT_10, RANKING_METRICS, metric_key

    out = metrics_from_ranks(torch.tensor([0, 3, 12]), ks=(5, 10))
    assert set(out) == {metric_key(m, k) for m in RANKING_METRICS for k in (5, 10)}
    assert (HR_AT_10, NDCG_AT_10, MRR_AT_10) == ("hr@10", "ndcg@10", "mrr@10")
