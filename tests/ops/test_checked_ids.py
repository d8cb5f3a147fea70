"""recengine.ops.checked_ids: the id range check as an op, in eager, compiled and exported modes."""

from __future__ import annotations

import pytest
import torch

from recengine.ops.checked_ids import checked_ids
from recengine.padding import PAD_ID


class _Lookup(torch.nn.Module):
    def forward(self, ids):
        return checked_ids(ids, 10, name="items", allow_pad=True)


def test_maps_pad_to_row_zero_and_keeps_the_rest():
    ids = torch.tensor([[3, PAD_ID, 9], [PAD_ID, 0, 1]], dtype=torch.int32)
    out = checked_ids(ids, 10, name="items", allow_pad=True)
    assert out.dtype == torch.int64
    assert torch.equal(out, torch.tensor([[3, 0, 9], [0, 0, 1]]))


def test_empty_ids_pass():
    assert checked_ids(torch.zeros(0, 3, dtype=torch.int64), 5, name="items").shape == (0, 3)


@pytest.mark.parametrize(
    "ids, allow_pad, match",
    [
        (torch.tensor([1, 10]), True, r"items: ids must lie in \[0, 10\) or be PAD_ID=-1, got range \[1, 10\]"),
        (torch.tensor([-2, 1]), True, r"got range \[-2, 1\]"),
        (torch.tensor([PAD_ID, 1]), False, r"items: ids must lie in \[0, 10\), got range \[-1, 1\]"),
    ],
    ids=["past_the_table", "negative_not_pad", "pad_not_allowed"],
)
def test_out_of_range_raises_naming_the_argument(ids, allow_pad, match):
    with pytest.raises(IndexError, match=match):
        checked_ids(ids, 10, name="items", allow_pad=allow_pad)


@pytest.mark.parametrize(
    "ids, num_rows, error",
    [(torch.tensor([1.0]), 3, TypeError), ([1, 2], 3, TypeError), (torch.tensor([1]), 0, ValueError)],
    ids=["float_ids", "not_a_tensor", "no_rows"],
)
def test_bad_arguments(ids, num_rows, error):
    with pytest.raises(error, match="items|num_rows"):
        checked_ids(ids, num_rows, name="items")


def test_opcheck():
    torch.library.opcheck(torch.ops.recengine.checked_ids, (torch.tensor([[2, PAD_ID]]), 4, "items", True))


@pytest.mark.parametrize("mode", ["compiled", "exported"])
def test_check_holds_in_a_graph(mode):
    good = torch.tensor([[1, PAD_ID]])
    if mode == "compiled":
        run = torch.compile(_Lookup(), fullgraph=True, backend="aot_eager")
    else:
        run = torch.export.export(_Lookup(), (good,)).module()
    assert torch.equal(run(good), torch.tensor([[1, 0]]))
    with pytest.raises(IndexError, match="items: ids must lie"):
        run(torch.tensor([[1, 10]]))
    torch._dynamo.reset()
