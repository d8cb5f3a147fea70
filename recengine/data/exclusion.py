"""The exclusion list in the CSR form the catalog ops take: which items each user must not be shown.

User b's excluded items are ``exclude_ids[exclude_offsets[b]:exclude_offsets[b + 1]]``, both int64 tensors.
Two sources build it: a padded (B, L) history matrix (the agents' observations) and a NumPy CSR (the
leave-one-out evaluation's seen items).
"""

from __future__ import annotations

import numpy as np
import torch

from recengine.padding import PAD_ID


def exclusion_csr(histories: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(exclude_offsets (B+1,), exclude_ids) of each row's items in a (B, L) history matrix (PAD_ID anywhere
    is skipped; items keep their slot order)."""
    valid = histories != PAD_ID
    offsets = torch.zeros(histories.shape[0] + 1, dtype=torch.int64)
    offsets[1:] = valid.sum(1).cumsum(0)
    return offsets, histories[valid].contiguous()


def csr_tensors(offsets: np.ndarray, ids: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """A NumPy CSR (offsets, ids) as the int64 tensors the catalog ops take (no copy when already int64)."""
    return (
        torch.from_numpy(np.ascontiguousarray(offsets, dtype=np.int64)),
        torch.from_numpy(np.ascontiguousarray(ids, dtype=np.int64)),
    )
