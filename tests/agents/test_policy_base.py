"""Reading a simulator observation as the (B, L) int64 history matrix every policy takes; the base policy."""

import numpy as np
import pytest
import torch

from recengine.agents.policy_base import Policy, histories


@pytest.mark.parametrize(
    "obs", [{"history": np.array([[1, -1]])}, np.array([[1, -1]]), torch.tensor([[1, -1]]), np.array([1, -1])]
)
def test_histories_of_any_observation_form(obs):
    h = histories(obs)
    assert h.dtype == torch.int64 and h.tolist() == [[1, -1]]


def test_a_policy_that_does_not_know_its_probabilities_says_so():
    with pytest.raises(NotImplementedError, match="probabilities"):
        Policy().prob({"history": np.array([[1, -1]])}, np.array([[0, 1]]))
