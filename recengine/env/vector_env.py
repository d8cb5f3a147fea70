"""One constructor for the vectorised simulator of either user model.

    env = vector_env(sim, 256)           # SequentialVecSim for a SequentialUserModel, VecRecSim for a UserModel

Code that runs sessions (rollouts, off-policy evaluation) takes "a fitted user model" and should not care which of
the two it is: both environments share the observation/step API.
"""

from __future__ import annotations

from recengine.env.sequential_sim import SequentialUserModel, SequentialVecSim
from recengine.env.simulator import VecRecSim
from recengine.env.user_model import UserModel

__all__ = ["vector_env"]


def vector_env(model: SequentialUserModel | UserModel, num_envs: int, config=None, user_pool=None):
    """``num_envs`` sessions of ``model`` stepped together: a ``SequentialVecSim`` for a ``SequentialUserModel``,
    a ``VecRecSim`` for a ``UserModel``. ``config`` (the matching config class) and ``user_pool`` default to the
    model's own."""
    if isinstance(model, SequentialUserModel):
        return SequentialVecSim(model, num_envs, config=config, user_pool=user_pool)
    if isinstance(model, UserModel):
        return VecRecSim(model, num_envs, config=config, user_pool=user_pool)
    raise TypeError(f"model must be a SequentialUserModel or a UserModel, got {type(model).__name__}")
