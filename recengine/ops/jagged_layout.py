"""The table-major jagged layout of the embedding_bag family, as plain index arithmetic (pure PyTorch; imports
nothing of recengine).

T tables' bags of B samples each are laid out table-major: the bag of sample b in table t is
``ids[offsets[t*B + b] : offsets[t*B + b + 1]]``. The reference lookup and the sharded input distribution both
need which bag each id belongs to.
"""

from __future__ import annotations

import torch

__all__ = ["bag_of_each_id"]


def bag_of_each_id(offsets: torch.Tensor, num_ids: int) -> torch.Tensor:
    """(N,) int64: the bag index j (= t*B + b) each id belongs to."""
    lengths = offsets[1:] - offsets[:-1]
    return torch.repeat_interleave(torch.arange(lengths.numel(), device=offsets.device), lengths, output_size=num_ids)
