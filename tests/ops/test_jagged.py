"""recengine.ops.jagged.select_tables: picking tables out of a table-major jagged batch."""

from __future__ import annotations

import pytest
import torch

from recengine.ops.jagged import select_tables


def _batch(num_tables: int, batch: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(0, 4, (num_tables * batch,), generator=g)
    offsets = torch.zeros(num_tables * batch + 1, dtype=torch.int64)
    offsets[1:] = lengths.cumsum(0)
    ids = torch.randint(0, 100, (int(offsets[-1]),), generator=g)
    return ids, offsets, torch.rand(ids.numel(), generator=g)


def _loop_reference(ids, offsets, psw, tables, num_tables):
    """Bag by bag in Python: the obvious code."""
    batch = (offsets.numel() - 1) // num_tables
    out_ids, out_psw, lengths = [], [], []
    for t in tables:
        for b in range(batch):
            s, e = int(offsets[t * batch + b]), int(offsets[t * batch + b + 1])
            out_ids += ids[s:e].tolist()
            out_psw += psw[s:e].tolist()
            lengths.append(e - s)
    new_offsets = torch.zeros(len(lengths) + 1, dtype=torch.int64)
    new_offsets[1:] = torch.tensor(lengths, dtype=torch.int64).cumsum(0)
    return torch.tensor(out_ids, dtype=ids.dtype), new_offsets, torch.tensor(out_psw)


@pytest.mark.parametrize("tables", [[2, 0], [1], [3, 1, 1], [0, 1, 2, 3][::-1]])
@pytest.mark.parametrize("batch", [0, 1, 5])
def test_matches_the_loop_reference(tables, batch):
    ids, offsets, psw = _batch(4, batch, seed=len(tables) + batch)
    got = select_tables(ids, offsets, tables, 4, psw)
    want = _loop_reference(ids, offsets, psw, tables, 4)
    for g, w in zip(got, want):
        assert torch.equal(g, w.to(g.dtype))


def test_identity_selection_returns_the_inputs():
    ids, offsets, psw = _batch(3, 4, seed=1)
    got = select_tables(ids, offsets, [0, 1, 2], 3, psw)
    assert got[0] is ids and got[1] is offsets and got[2] is psw


def test_per_sample_weight_gather_is_differentiable():
    ids, offsets, psw = _batch(3, 4, seed=2)
    psw.requires_grad_()
    _, _, picked = select_tables(ids, offsets, [2], 3, psw)
    picked.sum().backward()
    batch = 4
    expected = torch.zeros_like(psw)
    expected[int(offsets[2 * batch]) :] = 1.0
    assert torch.equal(psw.grad, expected)


def test_exports_with_a_data_dependent_size():
    class Select(torch.nn.Module):
        def forward(self, ids, offsets):
            return select_tables(ids, offsets, [1], 2)[:2]

    ids, offsets, _ = _batch(2, 3, seed=3)
    exported = torch.export.export(Select(), (ids, offsets), dynamic_shapes=({0: torch.export.Dim.AUTO}, None))
    other_ids, other_offsets, _ = _batch(2, 3, seed=4)
    for g, w in zip(exported.module()(other_ids, other_offsets), Select()(other_ids, other_offsets)):
        assert torch.equal(g, w)


@pytest.mark.parametrize(
    "tables, num_tables, offsets, exc, match",
    [
        ([0], 2, torch.zeros(4, dtype=torch.int64), ValueError, "offsets: expected length T\\*B\\+1"),
        ([2], 2, torch.zeros(5, dtype=torch.int64), ValueError, "tables: indices must be < num_tables"),
        ([-1], 2, torch.zeros(5, dtype=torch.int64), ValueError, "tables: must be >= 0"),
        ([0], 0, torch.zeros(5, dtype=torch.int64), ValueError, "num_tables"),
        ([0], 2, torch.zeros(5, dtype=torch.int32), TypeError, "offsets: expected dtype int64"),
    ],
)
def test_bad_arguments_raise_naming_them(tables, num_tables, offsets, exc, match):
    with pytest.raises(exc, match=match):
        select_tables(torch.zeros(0, dtype=torch.int64), offsets, tables, num_tables)
