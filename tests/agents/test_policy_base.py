"""Reading a simulator observation as the (B, L) int64 history matrix every policy takes."""

import numpy as np
import pytest
import torch

from recengine.agents.policy_base import histories


@pytest.mark.parametrize(
    "obs", [{"history": np.array([[1, -1]])}, np.array([[1, -1]]), torch.tensor([[1, -1]]), np.array([1, -1])]
)
def test_histories_of_any_observation_form(obs):
    h = histories(obs)
    assert h.dtype == torch.int64 and h.tolist() == [[1, -1]]
