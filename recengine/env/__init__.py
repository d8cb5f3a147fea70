"""recengine.env: the user simulators (gymnasium API, vectorised) and their fitting.

Two simulators share the observation/step API:

* the sequence-aware one fitted to real data without leakage (``fit_simulator`` -> ``SequentialUserModel``,
  stepped by ``SequentialVecSim`` / ``SequentialSimEnv``; ``save_simulator`` / ``load_simulator``);
* the matrix-factorisation one (``from_movielens`` / ``synthetic_user_model`` -> ``UserModel`` of
  ``recengine.env.user_model``, stepped by ``VecRecSim`` / ``RecSimEnv`` of ``recengine.env.simulator``), kept for
  the synthetic fallback and what still uses it.

Both step their sessions with the slot kernels and counter-based random draws of ``recengine.env.slot_kernels``.

``vector_env(model, n)`` builds the vectorised environment of either. Importing this package registers both with
gymnasium: ``gym.make("recengine/RecSim-v0")``, ``gym.make("recengine/SeqRecSim-v0")`` (``recengine.env.registration``);
the vectorised ones are ``gymnasium.vector.VectorEnv``s (``gym.make_vec(..., num_envs=n)``).
"""

from recengine.env.calibrate import fit_user_model, from_movielens, synthetic_user_model
from recengine.env.fit import fit_sessions, fit_simulator
from recengine.env.persistence import load_simulator, save_simulator
from recengine.env.registration import RECSIM_ID, SEQ_RECSIM_ID, register_envs
from recengine.env.response_model import ResponseModel, fit_response_model
from recengine.env.sequential_sim import (
    SeqSimConfig,
    SequentialSimEnv,
    SequentialUserModel,
    SequentialVecSim,
    calibrate_no_click,
)
from recengine.env.session_env import SlateSpace
from recengine.env.sessions import SessionModel, fit_session_model, split_sessions
from recengine.env.simulator import RecSimEnv, VecRecSim
from recengine.env.user_model import SimConfig, UserModel
from recengine.env.vector_env import vector_env
from recengine.padding import PAD_ID

register_envs()

__all__ = [
    "PAD_ID",
    "RECSIM_ID",
    "SEQ_RECSIM_ID",
    "RecSimEnv",
    "ResponseModel",
    "SeqSimConfig",
    "SequentialSimEnv",
    "SequentialUserModel",
    "SequentialVecSim",
    "SessionModel",
    "SimConfig",
    "SlateSpace",
    "UserModel",
    "VecRecSim",
    "calibrate_no_click",
    "fit_response_model",
    "fit_session_model",
    "fit_sessions",
    "fit_simulator",
    "fit_user_model",
    "from_movielens",
    "load_simulator",
    "save_simulator",
    "split_sessions",
    "synthetic_user_model",
    "vector_env",
]
