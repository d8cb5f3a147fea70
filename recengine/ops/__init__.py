"""Public operators: torch.library ops with a CPU (C++) and a CUDA (Triton) backend each.

Every op here validates its inputs once, then dispatches by device. The plain-PyTorch truth for
each lives in recengine.reference. What the ops and the reference share sits in pure helper modules that import
nothing of recengine: ``table_formats`` (the inference tables' storage formats), ``counter_hash`` (the sampling
hash's constants and seed key) and ``jagged_layout`` (the bag of each id).
"""

# One import line per operator family (add yours):
from recengine.ops.checked_ids import checked_ids  # noqa: F401  (id range check)
from recengine.ops.embedding_bag import embedding_bag, embedding_bag_fused_update  # noqa: F401
from recengine.ops.policy import catalog_cross_entropy, catalog_logsumexp, catalog_sample, catalog_topk  # noqa: F401
from recengine.ops.quantized_tables import quantized_catalog_topk, quantized_embedding_bag  # noqa: F401
from recengine.ops.replay import td_loss  # noqa: F401  (replay family)
