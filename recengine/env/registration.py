"""The simulators under gymnasium's registry: ``gym.make("recengine/RecSim-v0")`` and
``gym.make("recengine/SeqRecSim-v0")`` (``import recengine.env`` registers them).

    import gymnasium as gym
    import recengine.env

    env = gym.make("recengine/RecSim-v0")                       # a small synthetic population, built on the fly
    env = gym.make("recengine/SeqRecSim-v0", model=fitted_sim)  # a fitted SequentialUserModel
    envs = gym.make_vec("recengine/RecSim-v0", num_envs=64, vectorization_mode="vector_entry_point")  # VecRecSim

Without ``model``, ``RecSim-v0`` builds ``synthetic_user_model(num_users, num_items, seed=seed)`` and
``SeqRecSim-v0`` fits a quick ``SequentialUserModel`` to ``make_synthetic(num_users, num_items, seed=seed)`` (a few
seconds, once per (num_users, num_items, seed) in a process). ``config``, ``user_pool`` and ``render_mode`` are the
environments' own arguments.
"""

from __future__ import annotations

import functools
import numbers

import gymnasium as gym

from recengine.env.sequential_sim import SeqSimConfig, SequentialSimEnv, SequentialUserModel, SequentialVecSim
from recengine.env.simulator import RecSimEnv, VecRecSim
from recengine.env.user_model import SimConfig, UserModel

__all__ = [
    "RECSIM_ID",
    "SEQ_RECSIM_ID",
    "make_recsim",
    "make_recsim_vec",
    "make_seq_recsim",
    "make_seq_recsim_vec",
    "register_envs",
]

RECSIM_ID = "recengine/RecSim-v0"
"""the matrix-factorisation simulator (``RecSimEnv`` / ``VecRecSim``)"""
SEQ_RECSIM_ID = "recengine/SeqRecSim-v0"
"""the sequence-aware simulator (``SequentialSimEnv`` / ``SequentialVecSim``)"""


def _check_arguments(env_id: str, config, config_type: type, num_users, num_items, seed) -> None:
    """The entry points' own arguments, checked before anything is built: counts are ints >= 1, the seed an
    int >= 0, ``config`` this simulator's config class (or None)."""
    for name, value, low in (("num_users", num_users, 1), ("num_items", num_items, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{env_id}: {name} must be an int >= {low}, got {type(value).__name__} {value!r}")
        if value < low:
            raise ValueError(f"{env_id}: {name} must be an int >= {low}, got {value}")
    if config is not None and not isinstance(config, config_type):
        raise TypeError(f"{env_id}: config must be a {config_type.__name__} or None, got {type(config).__name__}")


SYNTHETIC_MAX_SIZE = 1_000_000
"""the largest num_users / num_items of the synthetic default models: they are built in memory at once (a fitted
model of any size can be passed as ``model``)"""


def _check_synthetic_sizes(env_id: str, num_users: int, num_items: int) -> None:
    """ValueError naming the argument when the synthetic default model would be too large to build, before any
    array is allocated."""
    for name, value in (("num_users", num_users), ("num_items", num_items)):
        if value > SYNTHETIC_MAX_SIZE:
            raise ValueError(
                f"{env_id}: {name} must be <= {SYNTHETIC_MAX_SIZE:,} for the synthetic default model, got {value:,}"
                " (pass a fitted model as `model` for a larger simulator)"
            )


def _default_user_model(model: UserModel | None, num_users: int, num_items: int, seed: int) -> UserModel:
    if model is None:
        _check_synthetic_sizes(RECSIM_ID, num_users, num_items)
        from recengine.env.calibrate import synthetic_user_model

        return synthetic_user_model(num_users, num_items, seed=seed)
    if not isinstance(model, UserModel):
        raise TypeError(f"model: expected a UserModel for {RECSIM_ID}, got {type(model).__name__}")
    return model


@functools.lru_cache(maxsize=4)
def _synthetic_sequential_model(num_users: int, num_items: int, seed: int) -> SequentialUserModel:
    """A quick fit to a synthetic MovieLens-shaped dataset (kept: fitting takes seconds, the model is read-only)."""
    from recengine.data.synthetic import make_synthetic
    from recengine.env.fit import fit_simulator

    return fit_simulator(make_synthetic(num_users, num_items, seed=seed), quick=True, seed=seed)


def _default_sequential_model(
    model: SequentialUserModel | None, num_users: int, num_items: int, seed: int
) -> SequentialUserModel:
    if model is None:
        _check_synthetic_sizes(SEQ_RECSIM_ID, num_users, num_items)
        return _synthetic_sequential_model(int(num_users), int(num_items), int(seed))
    if not isinstance(model, SequentialUserModel):
        raise TypeError(f"model: expected a SequentialUserModel for {SEQ_RECSIM_ID}, got {type(model).__name__}")
    return model


def make_recsim(
    model: UserModel | None = None,
    config: SimConfig | None = None,
    user_pool=None,
    render_mode: str | None = None,
    *,
    num_users: int = 200,
    num_items: int = 100,
    seed: int = 0,
) -> RecSimEnv:
    """The entry point of ``recengine/RecSim-v0``: a ``RecSimEnv`` of ``model`` (default: a synthetic one)."""
    _check_arguments(RECSIM_ID, config, SimConfig, num_users, num_items, seed)
    return RecSimEnv(_default_user_model(model, num_users, num_items, seed), config, user_pool, render_mode)


def make_recsim_vec(
    num_envs: int,
    model: UserModel | None = None,
    config: SimConfig | None = None,
    user_pool=None,
    *,
    num_users: int = 200,
    num_items: int = 100,
    seed: int = 0,
) -> VecRecSim:
    """The vector entry point of ``recengine/RecSim-v0``: a ``VecRecSim`` of ``num_envs`` sessions."""
    _check_arguments(RECSIM_ID, config, SimConfig, num_users, num_items, seed)
    return VecRecSim(_default_user_model(model, num_users, num_items, seed), num_envs, config, user_pool)


def make_seq_recsim(
    model: SequentialUserModel | None = None,
    config: SeqSimConfig | None = None,
    user_pool=None,
    render_mode: str | None = None,
    *,
    num_users: int = 100,
    num_items: int = 60,
    seed: int = 0,
) -> SequentialSimEnv:
    """The entry point of ``recengine/SeqRecSim-v0``: a ``SequentialSimEnv`` of ``model`` (default: fitted to a
    synthetic dataset)."""
    _check_arguments(SEQ_RECSIM_ID, config, SeqSimConfig, num_users, num_items, seed)
    return SequentialSimEnv(
        _default_sequential_model(model, num_users, num_items, seed), config, user_pool, render_mode
    )


def make_seq_recsim_vec(
    num_envs: int,
    model: SequentialUserModel | None = None,
    config: SeqSimConfig | None = None,
    user_pool=None,
    *,
    num_users: int = 100,
    num_items: int = 60,
    seed: int = 0,
) -> SequentialVecSim:
    """The vector entry point of ``recengine/SeqRecSim-v0``: a ``SequentialVecSim`` of ``num_envs`` sessions."""
    _check_arguments(SEQ_RECSIM_ID, config, SeqSimConfig, num_users, num_items, seed)
    return SequentialVecSim(_default_sequential_model(model, num_users, num_items, seed), num_envs, config, user_pool)


def register_envs() -> None:
    """Register both simulators with gymnasium (once: a second call leaves the registry as it is)."""
    for env_id, entry, vector_entry in (
        (RECSIM_ID, make_recsim, make_recsim_vec),
        (SEQ_RECSIM_ID, make_seq_recsim, make_seq_recsim_vec),
    ):
        if env_id not in gym.registry:
            gym.register(
                id=env_id,
                entry_point=f"{entry.__module__}:{entry.__name__}",
                vector_entry_point=f"{vector_entry.__module__}:{vector_entry.__name__}",
                disable_env_checker=False,
            )
