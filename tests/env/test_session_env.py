"""The shared gymnasium plumbing: the slate spaces and the VectorEnv contract of both vectorised simulators
(gymnasium 1.x ships no checker for vector envs, so the contract is tested here)."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from recengine.env import SequentialVecSim, SimConfig, SlateSpace, VecRecSim, synthetic_user_model
from recengine.env.session_env import check_num_envs
from tests.env.conftest import make_tiny_sim

NUM_ENVS = 5


def _mf_vec() -> VecRecSim:
    model = synthetic_user_model(30, 20, num_genres=4, dim=4, seed=1, config=SimConfig(slate_size=3, max_steps=6))
    return VecRecSim(model, NUM_ENVS)


def _seq_vec() -> SequentialVecSim:
    return SequentialVecSim(make_tiny_sim(), NUM_ENVS)


VEC_ENVS = pytest.mark.parametrize("make_env", [_mf_vec, _seq_vec], ids=["VecRecSim", "SequentialVecSim"])


@VEC_ENVS
def test_is_a_gymnasium_vector_env_with_same_step_autoreset(make_env):
    env = make_env()
    assert isinstance(env, gym.vector.VectorEnv)
    assert env.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP


@VEC_ENVS
def test_batched_spaces_are_the_single_spaces_batched(make_env):
    env = make_env()
    assert env.observation_space == batch_space(env.single_observation_space, NUM_ENVS)
    assert env.action_space == batch_space(env.single_action_space, NUM_ENVS)
    assert env.action_space.shape == (NUM_ENVS, env.slate_size)


@VEC_ENVS
def test_reset_and_step_return_members_of_the_batched_spaces(make_env):
    env = make_env()
    obs, info = env.reset(seed=3)
    assert env.observation_space.contains(obs) and info["user_id"].shape == (NUM_ENVS,)
    env.action_space.seed(0)
    for _ in range(20):
        obs, rewards, terminated, truncated, info = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs)
        assert rewards.shape == terminated.shape == truncated.shape == (NUM_ENVS,)
        assert terminated.dtype == truncated.dtype == np.bool_


@VEC_ENVS
def test_same_step_autoreset_keeps_the_final_observation_in_info(make_env):
    env = make_env()
    env.reset(seed=0)
    env.action_space.seed(1)
    ended = False
    for _ in range(40):
        obs, _, terminated, truncated, info = env.step(env.action_space.sample())
        done = terminated | truncated
        np.testing.assert_array_equal(info["_final_obs"], done)
        for key in obs:  # slots that did not end: the final observation is the observation
            np.testing.assert_array_equal(info["final_obs"][key][~done], obs[key][~done])
        if done.any():
            ended = True
            assert (obs["user_id"] == env.get_obs()["user_id"]).all()
    assert ended, "no session ended: the autoreset path was not exercised"


@VEC_ENVS
def test_a_list_of_seeds_gives_each_slot_its_stream(make_env):
    env = make_env()
    obs_int, _ = env.reset(seed=10)
    obs_list, _ = env.reset(seed=[10 + b for b in range(NUM_ENVS)])
    for key in obs_int:
        np.testing.assert_array_equal(obs_int[key], obs_list[key])


@VEC_ENVS
def test_a_list_of_seeds_of_the_wrong_length_is_rejected(make_env):
    with pytest.raises(ValueError, match="seed"):
        make_env().reset(seed=[1, 2])


@VEC_ENVS
def test_options_force_the_first_users(make_env):
    env = make_env()
    users = np.arange(NUM_ENVS) % 3
    obs, _ = env.reset(seed=0, options={"user_ids": users})
    np.testing.assert_array_equal(obs["user_id"], users)


@VEC_ENVS
def test_a_closed_env_must_be_reset_before_it_steps(make_env):
    env = make_env()
    env.reset(seed=0)
    env.close()
    assert env.closed
    with pytest.raises(RuntimeError, match="reset"):
        env.step(env.action_space.sample())


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-2, ValueError), (2.0, TypeError), (True, TypeError)])
def test_check_num_envs_rejects(bad, error):
    with pytest.raises(error, match="num_envs"):
        check_num_envs(bad)


def test_batched_slate_space_samples_distinct_items_per_row():
    space = SlateSpace(6, 4, seed=0, batch=50)
    sample = space.sample()
    assert sample.shape == (50, 4) and space.contains(sample)
    assert all(len(set(row)) == 4 for row in sample.tolist())


def test_batched_slate_space_rejects_a_repeated_item_in_any_row():
    space = SlateSpace(6, 2, batch=2)
    assert not space.contains(np.array([[0, 1], [3, 3]]))
