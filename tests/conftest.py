"""Test setup: Triton kernels run under the interpreter on the CPU when there is no GPU; every test leaves torch's
thread count as it found it (commands run in-process set it, as the process that owns them should)."""

import os

import pytest
import torch

if not torch.cuda.is_available():
    # Must be set before any @triton.jit function is defined (at recengine.kernels import).
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(autouse=True)
def _torch_threads_restored():
    threads = torch.get_num_threads()
    yield
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
