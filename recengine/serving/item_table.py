"""InferenceTable: the item table a served model reads, stored as float32, bfloat16 or row-wise int8.

The same table serves both ends of the model: the encoder's input lookup (one row per history slot, through
the pooled-lookup op with bags of one id) and the catalog top-k (the policy op's kernel for float32, or the
inference-table op's kernel that dequantizes rows on the fly for bfloat16 / int8). Quantizing happens once, at
load, and so does the check that every stored value is finite.

The public ops check every input's values on every call (finite tables, a well-formed exclusion list, enough
items left per row), because they cannot know where their inputs came from. A served table can: it was
checked at load and the Recommender validates each request's histories once, so `topk(..., checked=True)` on
the CPU calls the same C++ kernels directly and keeps only the checks of what the call itself produced (k
items found per row, finite scores); when one fails it reruns the public op, whose error names the cause.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from recengine._native import as_array, cpu_ops
from recengine.ops.policy import catalog_topk
from recengine.ops.quantized_tables import quantized_catalog_topk, quantized_embedding_bag
from recengine.ops.table_formats import TABLE_DTYPES, dequantize_rows, quantize_rows, table_bytes


def _longest_row(offsets: Tensor) -> int:
    """The most ids any row of a CSR with these `offsets` holds."""
    if offsets.device.type == "cpu":
        return int(np.diff(offsets.numpy()).max())
    return int((offsets[1:] - offsets[:-1]).max())


class InferenceTable(nn.Module):
    """An (N, D) item table in `dtype` ("float32", "bfloat16" or "int8"), with the head's item bias (N,).

    Buffers: ``rows`` (N, D) in the storage dtype, ``scale_bias`` (N, 2) float32 for int8 (else empty), ``bias``
    (N,) float32 (zeros when the head has none). Read-only after construction, so one table serves many threads.
    """

    def __init__(self, table: Tensor, bias: Tensor | None, dtype: str = "float32"):
        super().__init__()
        if dtype not in TABLE_DTYPES:
            raise ValueError(f"dtype: expected one of {TABLE_DTYPES}, got {dtype!r}")
        if not bool(torch.isfinite(table).all()) or (bias is not None and not bool(torch.isfinite(bias).all())):
            raise ValueError("table: the item table or its bias holds a non-finite value")
        rows, scale_bias = quantize_rows(table.detach().float().contiguous(), dtype)
        self.dtype_name = dtype
        self.num_items, self.dim = table.shape
        self.register_buffer("rows", rows.clone())
        self.register_buffer("scale_bias", scale_bias.clone() if scale_bias is not None else torch.empty(0))
        item_bias = torch.zeros(self.num_items) if bias is None else bias.detach().float().contiguous().clone()
        self.register_buffer("bias", item_bias)
        self.register_buffer("table_offsets", torch.tensor([0, self.num_items], dtype=torch.int64))

    @property
    def _np_rows(self) -> np.ndarray:
        """The rows as the C++ kernels read them (bfloat16 has no NumPy dtype: the same bits as int16)."""
        rows = self.rows.view(torch.int16) if self.rows.dtype == torch.bfloat16 else self.rows
        return as_array(rows, "rows")

    @property
    def _np_scale_bias(self) -> np.ndarray | None:
        scale_bias = self._scale_bias()
        return None if scale_bias is None else as_array(scale_bias, "scale_bias")

    @property
    def _np_bias(self) -> np.ndarray:
        return as_array(self.bias, "bias")

    def _scale_bias(self) -> Tensor | None:
        return self.scale_bias if self.rows.dtype == torch.int8 else None

    def nbytes(self) -> int:
        """Bytes of the stored rows (and per-row scale and bias): what the dtype saves."""
        return table_bytes(self.rows, self._scale_bias())

    def lookup(self, items: Tensor, *, checked: bool = False, pure: bool = False) -> Tensor:
        """(M, D) float32 rows of the item ids `items` (M,) int64, all in [0, N).

        `checked=True` says the caller has validated the ids (the Recommender does, once per request): the
        op is then called without its public checks, which at batch 1 cost more than the lookup. `pure=True`
        gathers and dequantizes with tensor ops (for a compiler to fuse; no bounds check of its own)."""
        if self.rows.dtype == torch.float32:
            return self.rows[items]
        if pure:
            scale_bias = self._scale_bias()
            return dequantize_rows(self.rows[items], None if scale_bias is None else scale_bias[items])
        offsets = torch.arange(items.numel() + 1, dtype=torch.int64, device=items.device)
        if checked:
            return torch.ops.recengine.quantized_embedding_bag(
                self.rows, self._scale_bias(), self.table_offsets, items, offsets, "sum"
            )
        return quantized_embedding_bag(self.rows, self._scale_bias(), self.table_offsets, items, offsets, "sum")

    def topk(
        self,
        states: Tensor,
        k: int,
        exclude_offsets: Tensor | None,
        exclude_ids: Tensor | None,
        *,
        checked: bool = False,
    ) -> tuple[Tensor, Tensor]:
        """(scores (B, k), ids (B, k)): the best items for `states` (B, D), excluded ones never returned.

        `checked=True` says the caller has validated the exclusion CSR (ids in the catalog, offsets from 0 to
        its length) and made `states` itself: when no row excludes more than N - k items, the op then runs
        without its public checks (the k check would otherwise need a distinct count per row)."""
        if checked and (exclude_offsets is None or _longest_row(exclude_offsets) <= self.num_items - k):
            if states.device.type == "cpu":
                found = self._kernel_topk(states, k, exclude_offsets, exclude_ids)
                if found is not None:
                    return found
            if self.rows.dtype == torch.float32:
                return torch.ops.recengine.catalog_topk(
                    states, self.rows, k, self.bias, 1.0, exclude_offsets, exclude_ids
                )
            return torch.ops.recengine.quantized_catalog_topk(
                states, self.rows, self._scale_bias(), k, self.bias, exclude_offsets, exclude_ids
            )
        if self.rows.dtype == torch.float32:
            return catalog_topk(
                states, self.rows, k, bias=self.bias, exclude_offsets=exclude_offsets, exclude_ids=exclude_ids
            )
        return quantized_catalog_topk(
            states,
            self.rows,
            self._scale_bias(),
            k,
            bias=self.bias,
            exclude_offsets=exclude_offsets,
            exclude_ids=exclude_ids,
        )

    def _kernel_topk(
        self, states: Tensor, k: int, exclude_offsets: Tensor | None, exclude_ids: Tensor | None
    ) -> tuple[Tensor, Tensor] | None:
        """The CPU kernel's (scores, ids) for inputs the caller has validated, or None when a row found fewer
        than k items or a score is not finite (the caller then runs the public op, which says why)."""
        b = states.shape[0]
        # NumPy buffers: at batch 1 each torch allocation or reduction costs more than the kernel's sweep
        a_vals = np.full((b, k), -np.inf, dtype=np.float32)
        a_ids = np.full((b, k), -1, dtype=np.int64)
        a_count = np.zeros(b, dtype=np.int64)
        q = as_array(states.contiguous(), "states")
        off = None if exclude_offsets is None else as_array(exclude_offsets, "exclude_offsets")
        ex = None if exclude_ids is None else as_array(exclude_ids, "exclude_ids")
        kernels = cpu_ops()
        if self.rows.dtype == torch.float32:
            kernels.policy_topk(q, self._np_rows, self._np_bias, 1.0, off, ex, a_vals, a_ids, a_count)
            kernels.policy_heaps_finish(a_vals, a_ids, None, a_count)
        else:
            fmt = "int8" if self.rows.dtype == torch.int8 else "bfloat16"
            kernels.qtable_topk(
                fmt, q, self._np_rows, self._np_scale_bias, self._np_bias, off, ex, a_vals, a_ids, a_count
            )
        if (a_count < k).any() or not np.isfinite(a_vals).all():
            return None
        return torch.from_numpy(a_vals), torch.from_numpy(a_ids)
