"""The EmbeddingTables train step (the W1 bench step) with no host sync, capturable in a CUDA graph.

    step = EmbeddingTrainStep(tables, capture=True)
    pooled = step(ids, offsets, grad_output)   # forward, then backward of grad_output with the fused update
    step.raise_reported_error()                # when you choose: one host read for every step since the last

One call is `tables(ids, offsets).backward(grad_output)`: the pooled lookup, then the fused optimizer update
of the touched rows (recengine.optim). The batch's structure (dtypes, shapes, devices) is checked where it
enters; its values are checked where that costs no device sync: on the host when `ids` come from the host
(the usual case: the data loader's tensors), else inside the lookup kernel, which skips a bad id and records
it in `error`, read by `raise_reported_error` after the step. The step itself reads nothing back.
"""

from __future__ import annotations

import torch
from torch import Tensor

from recengine.nn import EmbeddingTables
from recengine.ops._checks import INDEX_DTYPES, check_tensor
from recengine.ops.embedding_bag import check_embedding_bag_values
from recengine.ops.sync_free import NO_ERROR
from recengine.train.graph_step import GraphStep
from recengine.train.sync_free_lookup import new_error_flag, raise_reported_error, sync_free_lookup

__all__ = ["EmbeddingTrainStep"]


class EmbeddingTrainStep:
    """One fused train step of `tables` per call (tables of one dim with a fused optimizer); with capture=True
    on CUDA, replayed from a CUDA graph from the second call on (batches of one shape)."""

    def __init__(self, tables: EmbeddingTables, *, capture: bool = False):
        if hasattr(tables, "groups") or tables.optimizer is None:
            raise ValueError("tables: EmbeddingTrainStep needs tables of one dim with a fused optimizer")
        self.tables = tables
        self.device = tables.weights.device
        self.capture = capture
        self.error = new_error_flag(self.device)
        self._host_table_offsets = tables.table_offsets.cpu()
        self.inputs: dict[str, Tensor] | None = None
        self._graph_step: GraphStep | None = None

    def __call__(self, ids: Tensor, offsets: Tensor, grad_output: Tensor) -> Tensor:
        """load(...), then run(): the pooled (B, T*D) output of the forward (with capture, the same tensor
        every call)."""
        self.load(ids, offsets, grad_output)
        return self.run()

    def run(self) -> Tensor:
        """The step on the loaded batch (eager, or replayed from a CUDA graph): no host sync."""
        if self._graph_step is None:
            raise RuntimeError("EmbeddingTrainStep.run: load a batch first")
        return self._graph_step()

    def load(self, ids: Tensor, offsets: Tensor, grad_output: Tensor) -> None:
        """Where the batch enters: its structure checked (and its values, when on the host), then copied into
        the step's fixed device tensors."""
        tables = self.tables
        check_tensor("ids", ids, dtypes=INDEX_DTYPES, ndim=1)
        check_tensor("offsets", offsets, dtypes=(torch.int64,), shape=(None,))
        if offsets.shape[0] < 1 or (offsets.shape[0] - 1) % tables.num_tables:
            raise ValueError(
                f"offsets: expected length T*B+1 with T={tables.num_tables} tables, got {offsets.shape[0]}"
            )
        batch = (offsets.shape[0] - 1) // tables.num_tables
        check_tensor("grad_output", grad_output, dtypes=(torch.float32,), shape=(batch, tables.output_dim))
        if ids.device.type == "cpu" and offsets.device.type == "cpu":  # on the host: no device sync
            check_embedding_bag_values(tables.weights.shape[0], self._host_table_offsets, ids, offsets, tables.names)
        given = {"ids": ids, "offsets": offsets, "grad_output": grad_output}
        if self.inputs is None or any(
            self.inputs[n].shape != t.shape or self.inputs[n].dtype != t.dtype for n, t in given.items()
        ):
            self.inputs = {n: torch.empty_like(t, device=self.device) for n, t in given.items()}
            self._graph_step = GraphStep(self._step, self.device, self.capture)
        for n, t in given.items():
            self.inputs[n].copy_(t, non_blocking=True)

    def _step(self) -> Tensor:
        """Forward + fused backward on self.inputs: no host sync from here on."""
        x = self.inputs
        pooled = sync_free_lookup(self.tables, x["ids"], x["offsets"], self.error)
        pooled.backward(x["grad_output"])
        return pooled.detach()

    def raise_reported_error(self) -> None:
        """Raise the error of the last batch if a lookup kernel reported one since the flag was last reset
        (one host read); then reset the flag."""
        try:
            raise_reported_error(self.error, self.tables, self.inputs["ids"], self.inputs["offsets"])
        finally:
            self.error.fill_(NO_ERROR)
