"""Property tests: embedding_bag and its fused update against recengine.reference over random tables, jagged
bags (empty bags, duplicate ids), both poolings, per-sample weights, every optimizer and extreme values."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from recengine.ops import embedding_bag, embedding_bag_fused_update
from recengine.reference.embedding_bag import embedding_bag_reference, fused_update_reference

SETTINGS = settings(max_examples=30, deadline=None, derandomize=True)


@st.composite
def bags(draw):
    """(weights, table_offsets, ids (int32 or int64), offsets, per_sample_weights or None, pooling)."""
    rows = draw(st.lists(st.integers(1, 6), min_size=1, max_size=3))
    dim = draw(st.integers(1, 9))
    batch = draw(st.integers(0, 4))
    scale = draw(st.sampled_from([1.0, 1e-30, 1e30]))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    weights = torch.randn(sum(rows), dim, generator=g) * scale
    table_offsets = torch.tensor([0, *torch.tensor(rows).cumsum(0).tolist()])
    ids, lengths = [], []
    for r in rows:
        for _ in range(batch):
            n = draw(st.integers(0, 4))  # empty bags included
            ids += draw(st.lists(st.integers(0, r - 1), min_size=n, max_size=n))  # duplicates included
            lengths.append(n)
    offsets = torch.tensor([0, *torch.tensor(lengths, dtype=torch.int64).cumsum(0).tolist()], dtype=torch.int64)
    ids = torch.tensor(ids, dtype=draw(st.sampled_from([torch.int32, torch.int64])))
    psw = torch.rand(len(ids), generator=g) if draw(st.booleans()) else None
    return weights, table_offsets, ids, offsets, psw, draw(st.sampled_from(["sum", "mean"]))


@SETTINGS
@given(bags())
def test_forward_matches_the_reference(case):
    weights, table_offsets, ids, offsets, psw, pooling = case
    out = embedding_bag(weights, table_offsets, ids, offsets, psw, pooling=pooling)
    ref = embedding_bag_reference(
        weights.double(), table_offsets, ids, offsets, None if psw is None else psw.double(), pooling
    )
    assert out.dtype == torch.float32 and out.shape == ref.shape
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-6 * float(weights.abs().max().clamp(min=1e-30)))


@SETTINGS
@given(
    bags(),
    st.sampled_from(["sgd", "rowwise_adagrad", "adam"]),
    st.floats(0.0, 1.0),
    st.integers(1, 5),
    st.sampled_from([(0.9, 0.999), (0.0, 0.0), (0.5, 0.99)]),
)
def test_fused_update_matches_the_reference(case, optimizer, lr, step, betas):
    weights, table_offsets, ids, offsets, psw, pooling = case
    weights = weights.clamp(-1e3, 1e3)  # the update's own arithmetic, not the overflow of g*g, is under test
    num_tables = table_offsets.numel() - 1
    batch = (offsets.numel() - 1) // num_tables
    grad = torch.randn(batch, num_tables * weights.shape[1], generator=torch.Generator().manual_seed(step))
    state = {}
    kw = {}
    if optimizer == "rowwise_adagrad":
        state = {"sum": torch.rand(weights.shape[0])}
        kw = {"state1": state["sum"].clone()}
    elif optimizer == "adam":
        state = {"m": torch.randn_like(weights), "v": torch.rand_like(weights)}
        kw = {"state1": state["m"].clone(), "state2": state["v"].clone(), "step": step, "betas": betas}
    new_w, new_state = fused_update_reference(
        weights,
        table_offsets,
        ids,
        offsets,
        grad,
        psw,
        pooling,
        optimizer=optimizer,
        lr=lr,
        state=state,
        step=step,
        betas=betas,
    )
    w = weights.clone()
    embedding_bag_fused_update(
        grad, w, table_offsets, ids, offsets, psw, pooling=pooling, optimizer=optimizer, lr=lr, **kw
    )
    torch.testing.assert_close(w, new_w, rtol=1e-4, atol=1e-4)
    for got, name in ((kw.get("state1"), "sum" if optimizer == "rowwise_adagrad" else "m"), (kw.get("state2"), "v")):
        if got is not None:
            torch.testing.assert_close(got, new_state[name], rtol=1e-4, atol=1e-5)
