"""recengine.env: the user simulator (gymnasium API, vectorised) and its calibration."""
from recengine.env.calibrate import fit_user_model, from_movielens, synthetic_user_model
from recengine.env.simulator import PAD_ID, RecSimEnv, SimConfig, SlateSpace, UserModel, VecRecSim

__all__ = ["PAD_ID", "RecSimEnv", "SimConfig", "SlateSpace", "UserModel", "VecRecSim", "fit_user_model",
           "from_movielens", "synthetic_user_model"]
