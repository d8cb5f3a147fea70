"""gymnasium's registry knows both simulators once recengine.env is imported."""

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

from recengine.env import (
    RECSIM_ID,
    SEQ_RECSIM_ID,
    RecSimEnv,
    SequentialSimEnv,
    SequentialVecSim,
    SimConfig,
    VecRecSim,
    synthetic_user_model,
)
from recengine.env.registration import register_envs
from tests.env.conftest import make_tiny_sim


def test_make_builds_the_simulator_with_its_synthetic_default():
    env = gym.make(RECSIM_ID, num_users=20, num_items=15)
    assert isinstance(env.unwrapped, RecSimEnv) and env.unwrapped.model.num_users == 20


def test_made_simulator_passes_the_gymnasium_checker():
    env = gym.make(RECSIM_ID, num_users=20, num_items=15)
    check_env(env.unwrapped, skip_render_check=True)


def test_make_takes_a_fitted_model_and_a_config():
    model = synthetic_user_model(12, 9, seed=2)
    env = gym.make(RECSIM_ID, model=model, config=SimConfig(slate_size=2))
    assert env.unwrapped.model is model and env.action_space.shape == (2,)


def test_make_sequential_takes_a_fitted_model():
    sim = make_tiny_sim()
    env = gym.make(SEQ_RECSIM_ID, model=sim)
    assert isinstance(env.unwrapped, SequentialSimEnv) and env.unwrapped.model is sim
    check_env(env.unwrapped, skip_render_check=True)


def test_make_sequential_fits_a_small_default_model():
    env = gym.make(SEQ_RECSIM_ID, num_users=30, num_items=25)
    assert env.unwrapped.model.num_items == 25
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)


@pytest.mark.parametrize(
    "env_id, model, vec_class",
    [(RECSIM_ID, None, VecRecSim), (SEQ_RECSIM_ID, "tiny", SequentialVecSim)],
)
def test_make_vec_uses_the_vectorised_simulator(env_id, model, vec_class):
    kwargs = {"model": make_tiny_sim()} if model == "tiny" else {"num_users": 20, "num_items": 15}
    envs = gym.make_vec(env_id, num_envs=3, **kwargs)
    assert isinstance(envs, vec_class) and envs.num_envs == 3


@pytest.mark.parametrize("env_id", [RECSIM_ID, SEQ_RECSIM_ID])
def test_make_rejects_a_model_of_the_other_simulator(env_id):
    other = synthetic_user_model(5, 5) if env_id == SEQ_RECSIM_ID else make_tiny_sim()
    with pytest.raises(TypeError, match="model"):
        gym.make(env_id, model=other)


def test_registering_twice_keeps_the_registry():
    before = gym.spec(RECSIM_ID)
    register_envs()
    assert gym.spec(RECSIM_ID) is before


@pytest.mark.parametrize("env_id", [RECSIM_ID, SEQ_RECSIM_ID])
@pytest.mark.parametrize("name", ["num_users", "num_items"])
def test_an_absurd_synthetic_size_is_refused_by_name_before_anything_is_built(env_id, name):
    sizes = {"num_users": 20, "num_items": 15, name: 2**40}
    with pytest.raises(ValueError, match=name):
        gym.make(env_id, **sizes)
    with pytest.raises(ValueError, match=name):
        gym.make_vec(env_id, num_envs=2, vectorization_mode="vector_entry_point", **sizes)
