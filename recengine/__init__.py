"""recengine: fused operators and a full system for large-sequence-model + RL recommenders."""
__version__ = "0.1.0"

from recengine import optim  # noqa: E402,F401
from recengine.nn.embedding_tables import TableSpec  # noqa: E402,F401
