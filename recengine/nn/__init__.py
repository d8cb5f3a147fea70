"""nn.Modules built on the ops."""
# One import line per module (add yours):
from .embedding_tables import EmbeddingTables, TableSpec  # noqa: F401,E402
from .sequence_encoder import PAD, SequenceEncoder  # noqa: F401,E402
from .catalog_head import CatalogHead  # noqa: F401,E402
