"""recengine.train: supervised next-item training of the large model (config, batching, the training loop)."""

from .config import SASRecConfig  # noqa: F401
from .sasrec import TrainResult, model_from_data, train_sasrec  # noqa: F401
