"""nn.Modules built on the ops."""

# One import line per module (add yours):
from .catalog_head import CatalogHead  # noqa: F401,E402
from .embedding_tables import EmbeddingTables, TableSpec  # noqa: F401,E402
from .keyed_jagged import from_keyed_jagged, is_keyed_jagged  # noqa: F401,E402
from .modes import disable_dropout, eval_mode  # noqa: F401,E402
from .score_ensemble import ScoreEnsemble  # noqa: F401,E402
from .sequence_encoder import SequenceEncoder  # noqa: F401,E402
from .sequence_recommender import SequenceRecommender  # noqa: F401,E402
