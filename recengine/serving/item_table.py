"""InferenceTable: the item table a served model reads, stored as float32, bfloat16 or row-wise int8.

The same table serves both ends of the model: the encoder's input lookup (one row per history slot, through
the pooled-lookup op with bags of one id) and the catalog top-k (through the policy op for float32, or the
inference-table op that dequantizes rows on the fly for bfloat16 / int8). Quantizing happens once, at load.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from recengine.ops.policy import catalog_topk
from recengine.ops.quantized_tables import quantized_catalog_topk, quantized_embedding_bag
from recengine.reference.quantized_tables import TABLE_DTYPES, quantize_rows, table_bytes


class InferenceTable(nn.Module):
    """An (N, D) item table in `dtype` ("float32", "bfloat16" or "int8"), with the head's item bias (N,).

    Buffers: ``rows`` (N, D) in the storage dtype, ``scale_bias`` (N, 2) float32 for int8 (else empty), ``bias``
    (N,) float32 (zeros when the head has none). Read-only after construction, so one table serves many threads.
    """

    def __init__(self, table: Tensor, bias: Tensor | None, dtype: str = "float32"):
        super().__init__()
        if dtype not in TABLE_DTYPES:
            raise ValueError(f"dtype: expected one of {TABLE_DTYPES}, got {dtype!r}")
        rows, scale_bias = quantize_rows(table.detach().float().contiguous(), dtype)
        self.dtype_name = dtype
        self.num_items, self.dim = table.shape
        self.register_buffer("rows", rows.clone())
        self.register_buffer("scale_bias", scale_bias.clone() if scale_bias is not None else torch.empty(0))
        item_bias = torch.zeros(self.num_items) if bias is None else bias.detach().float().contiguous().clone()
        self.register_buffer("bias", item_bias)
        self.register_buffer("table_offsets", torch.tensor([0, self.num_items], dtype=torch.int64))

    def _scale_bias(self) -> Tensor | None:
        return self.scale_bias if self.rows.dtype == torch.int8 else None

    def nbytes(self) -> int:
        """Bytes of the stored rows (and per-row scale and bias): what the dtype saves."""
        return table_bytes(self.rows, self._scale_bias())

    def lookup(self, items: Tensor, *, checked: bool = False) -> Tensor:
        """(M, D) float32 rows of the item ids `items` (M,) int64, all in [0, N).

        `checked=True` says the caller has validated the ids (the Recommender does, once per request): the
        op is then called without its public checks, which at batch 1 cost more than the lookup."""
        if self.rows.dtype == torch.float32:
            return self.rows[items]
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
        if checked and (
            exclude_offsets is None or int((exclude_offsets[1:] - exclude_offsets[:-1]).max()) <= self.num_items - k
        ):
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
