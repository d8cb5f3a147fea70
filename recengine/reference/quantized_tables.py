"""Plain-PyTorch truth for the inference tables (tests and benchmarks import it): row-wise int8 and bfloat16.

The storage formats (row-wise int8 codes with a scale and bias per row, bfloat16) and their quantization are
``recengine.ops.table_formats``'s. The ops over them (recengine.ops.quantized_tables) compute in float32 from the
dequantized rows: the catalog top-k scores ``Q . dequant(E[a]) + bias[a]`` exactly as float32 over the dequantized
table would, so the only difference from the float32 model is the table's rounding.
"""

from __future__ import annotations

from recengine.ops.table_formats import dequantize_rows
from recengine.reference.embedding_bag import embedding_bag_reference
from recengine.reference.policy import catalog_topk_reference


def quantized_catalog_topk_reference(Q, rows, scale_bias, k, *, bias=None, exclude_offsets=None, exclude_ids=None):
    """(scores (B, k), ids (B, k) int64) of the k best items over the dequantized table, descending, ties by
    lower id, excluded items never returned (the float32 catalog top-k over ``dequantize_rows``)."""
    return catalog_topk_reference(
        Q, dequantize_rows(rows, scale_bias), k, bias=bias, exclude_offsets=exclude_offsets, exclude_ids=exclude_ids
    )


def quantized_embedding_bag_reference(rows, scale_bias, table_offsets, ids, offsets, pooling="sum"):
    """Pooled lookup (B, T*D) over the dequantized stacked tables (layout as recengine.ops.embedding_bag)."""
    return embedding_bag_reference(dequantize_rows(rows, scale_bias), table_offsets, ids, offsets, pooling=pooling)
