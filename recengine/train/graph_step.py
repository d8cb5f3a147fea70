"""Run a training step eagerly, or on CUDA replay it from a captured CUDA graph: one launch for the whole step.

A step here is a function of no arguments that reads its inputs from fixed tensors (the caller copies each
batch into them) and returns tensors; it must do no host sync (see recengine.train.dqn_step). The first call
runs it eagerly on a side stream (it compiles the Triton kernels and allocates the optimizer state, which a
capture cannot do); the second captures it and replays the capture; later calls replay. Every call applies
exactly one step: a capture records the work without running it. The outputs of a replay are the same
tensors every time (overwritten by the next call). Off CUDA, or with capture=False, every call is eager.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

import torch

__all__ = ["GraphStep"]

Out = TypeVar("Out")


class GraphStep(Generic[Out]):
    """`step()` as described above; `prepare` (optional) runs before each eager call and before the capture
    (e.g. setting gradients to None, so a captured backward allocates them in the graph's pool)."""

    def __init__(
        self,
        step: Callable[[], Out],
        device: torch.device,
        capture: bool,
        prepare: Callable[[], None] | None = None,
    ):
        self.step = step
        self.prepare = prepare or (lambda: None)
        self.capture = bool(capture) and torch.device(device).type == "cuda"
        self.graph: torch.cuda.CUDAGraph | None = None
        self.outputs: Out | None = None
        self.calls = 0

    def __call__(self) -> Out:
        self.calls += 1
        if not self.capture:
            self.prepare()
            return self.step()
        if self.graph is not None:
            self.graph.replay()
            return self.outputs
        if self.calls == 1:  # eager warm-up on a side stream, as torch.cuda.graphs asks
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                self.prepare()
                out = self.step()
            torch.cuda.current_stream().wait_stream(side)
            return out
        self.prepare()
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.outputs = self.step()
        self.graph.replay()
        return self.outputs
