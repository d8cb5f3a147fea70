"""vector_env: the right vectorised simulator for each kind of user model."""

from __future__ import annotations

import numpy as np
import pytest

from recengine.env import SequentialVecSim, VecRecSim, synthetic_user_model, vector_env
from tests.env.conftest import make_tiny_sim


def test_sequential_model_gets_a_sequential_env():
    sim = make_tiny_sim()
    env = vector_env(sim, 4, user_pool=np.array([1, 2]))
    assert isinstance(env, SequentialVecSim) and env.num_envs == 4
    obs, _ = env.reset(seed=0)
    assert set(obs["user_id"].tolist()) <= {1, 2}


def test_matrix_factorisation_model_gets_a_vecrecsim():
    env = vector_env(synthetic_user_model(num_users=5, num_items=12, seed=0), 3)
    assert isinstance(env, VecRecSim) and env.num_envs == 3


def test_other_objects_are_refused():
    with pytest.raises(TypeError, match="model must be"):
        vector_env(object(), 2)
