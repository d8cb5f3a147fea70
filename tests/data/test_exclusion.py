"""The exclusion CSR the catalog ops take, from a padded history matrix and from a NumPy CSR."""

import numpy as np
import torch

from recengine.data import csr_tensors, exclusion_csr


def test_exclusion_csr_any_padding():
    hist = torch.tensor([[-1, -1, 4, 2], [7, -1, -1, -1], [-1, -1, -1, -1]])
    offsets, ids = exclusion_csr(hist)
    assert offsets.tolist() == [0, 2, 3, 3] and ids.tolist() == [4, 2, 7]


def test_csr_tensors_are_int64():
    offsets, ids = csr_tensors(np.array([0, 1, 3], dtype=np.int32), np.array([5, 1, 2], dtype=np.int32))
    assert offsets.dtype == ids.dtype == torch.int64
    assert offsets.tolist() == [0, 1, 3] and ids.tolist() == [5, 1, 2]
