"""The baselines: random and popularity never show a seen item; MF ranks by its fitted factors."""

import numpy as np
import pytest
import torch

from recengine.agents.baselines import MatrixFactorizationPolicy, PopularityPolicy, RandomPolicy

HIST = torch.tensor([[0, 1, 2, 3], [-1, -1, 5, 6]])


def test_random_slates_are_distinct_and_unseen():
    slates = RandomPolicy(10, 4, seed=0).act(HIST)
    for row, h in zip(slates.tolist(), HIST.tolist()):
        assert len(set(row)) == 4 and not set(row) & set(h)


def test_popularity_ranks_by_count_without_seen_items():
    pop = PopularityPolicy(np.arange(10)[::-1].copy(), 3).act(HIST)  # item 0 most popular
    assert pop.tolist() == [[4, 5, 6], [0, 1, 2]]


def test_mf_ranks_each_user_by_its_own_factors():
    users = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    items = torch.tensor([[3.0, 0.0], [2.0, 0.0], [0.0, 3.0], [0.0, 2.0], [1.0, 1.0]])
    policy = MatrixFactorizationPolicy(users, items, torch.zeros(5), 2)
    obs = {"history": np.array([[0, -1], [-1, -1]]), "user_id": np.array([0, 1])}
    assert policy.act(obs).tolist() == [[1, 4], [2, 3]]  # user 0 has seen item 0


@pytest.mark.parametrize(
    "obs, error",
    [
        (np.array([[0, 1]]), ValueError),  # no user ids at all
        ({"history": np.array([[0, 1]]), "user_id": np.array([2])}, IndexError),  # a user the model never saw
    ],
)
def test_mf_bad_observations(obs, error):
    policy = MatrixFactorizationPolicy(torch.ones(2, 1), torch.ones(3, 1), torch.zeros(3), 1)
    with pytest.raises(error, match="obs"):
        policy.act(obs)


class _FixedScorer(torch.nn.Module):
    """Scores item i as 10 - i for every history (so the unmasked top-k is 0, 1, 2, ...)."""

    dim = 1

    def forward(self, hist):
        n = 10
        return torch.ones(hist.shape[0], 1), torch.ones(n, 1), -torch.arange(n, dtype=torch.float32)


def test_large_model_excludes_the_logged_items_only_when_given_them():
    from recengine.agents.baselines import SupervisedPolicy
    from recengine.agents.logged_items import LoggedItems

    obs = {"history": np.array([[0, -1], [-1, 5]]), "user_id": np.array([1, 0])}
    logged = LoggedItems(np.array([0, 2, 3]), np.array([1, 2, 4]))  # user 0: items 1, 2; user 1: item 4
    plain = SupervisedPolicy(_FixedScorer(), 3).act(obs)
    assert plain.tolist() == [[1, 2, 3], [0, 1, 2]]  # the visible history only
    aware = SupervisedPolicy(_FixedScorer(), 3, logged=logged).act(obs)
    assert aware.tolist() == [[1, 2, 3], [0, 3, 4]]  # user 1 (row 0) loses item 4 (not in its top 3 anyway)
    obs["user_id"] = np.array([0, 1])
    assert SupervisedPolicy(_FixedScorer(), 3, logged=logged).act(obs).tolist() == [[3, 4, 5], [0, 1, 2]]
