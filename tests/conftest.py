"""Test setup: Triton kernels run under the interpreter on the CPU when there is no GPU."""

import os

import torch

if not torch.cuda.is_available():
    # Must be set before any @triton.jit function is defined (at recengine.kernels import).
    os.environ.setdefault("TRITON_INTERPRET", "1")
