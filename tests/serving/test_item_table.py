"""recengine.serving.item_table: the validated top-k path answers what the public ops answer."""

import pytest
import torch

from recengine.ops.policy import catalog_topk
from recengine.ops.quantized_tables import quantized_catalog_topk
from recengine.serving.item_table import InferenceTable


def _table(dtype: str) -> InferenceTable:
    gen = torch.Generator().manual_seed(0)
    return InferenceTable(torch.randn(200, 16, generator=gen), torch.randn(200, generator=gen) * 0.1, dtype)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "int8"])
def test_checked_topk_equals_the_public_op(dtype):
    table = _table(dtype)
    states = torch.randn(5, 16, generator=torch.Generator().manual_seed(1))
    offsets = torch.tensor([0, 3, 3, 5, 9, 10])
    seen = torch.tensor([1, 2, 3, 7, 7, 8, 9, 10, 11, 199])
    scores, items = table.topk(states, 10, offsets, seen, checked=True)
    kw = dict(bias=table.bias, exclude_offsets=offsets, exclude_ids=seen)
    if dtype == "float32":
        ref_scores, ref_items = catalog_topk(states, table.rows, 10, **kw)
    else:
        scale_bias = table.scale_bias if dtype == "int8" else None
        ref_scores, ref_items = quantized_catalog_topk(states, table.rows, scale_bias, 10, **kw)
    assert torch.equal(items, ref_items) and torch.allclose(scores, ref_scores)


def test_checked_topk_still_refuses_a_k_beyond_the_unseen_items():
    table = InferenceTable(torch.randn(4, 8), None, "float32")
    with pytest.raises(ValueError, match="k"):
        table.topk(torch.randn(1, 8), 4, torch.tensor([0, 2]), torch.tensor([1, 1]), checked=True)


@pytest.mark.parametrize("where", ["table", "bias"])
def test_non_finite_table_is_refused_at_load(where):
    table, bias = torch.randn(10, 4), torch.zeros(10)
    (table if where == "table" else bias)[3] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        InferenceTable(table, bias, "int8")
