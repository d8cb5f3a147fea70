"""recengine.ops quantized_tables family: the inference-table ops on the CPU (C++ kernels) against the plain-PyTorch
reference over the dequantized tables; bad input; opcheck. The Triton launchers are tested in
tests/kernels/test_quantized_tables.py."""

import pytest
import torch

from recengine.ops.quantized_tables import quantized_catalog_topk, quantized_embedding_bag
from recengine.ops.table_formats import dequantize_rows, quantize_rows
from recengine.reference import policy as policy_ref
from recengine.reference import quantized_tables as ref
from tests.helpers import assert_close, make_bag_inputs, make_catalog_case

FORMATS = ["int8", "bfloat16"]


def assert_same_topk(Q, rows, scale_bias, k, kw, scores, ids):
    """`ids` are a valid top-k of the dequantized logits: each returned item scores what the reference's item of
    that rank scores (equal up to float rounding, so near-ties may swap), no item twice, none excluded."""
    r_scores, r_ids = ref.quantized_catalog_topk_reference(Q, rows, scale_bias, k, **kw)
    logits = policy_ref.catalog_logits(Q, dequantize_rows(rows, scale_bias), **kw)
    assert ids.dtype == torch.int64 and ids.shape == r_ids.shape
    assert_close(scores, r_scores, rtol=1e-5, atol=1e-5, name="scores")
    assert_close(logits.gather(1, ids), r_scores, rtol=1e-5, atol=1e-5, name="logits of the returned ids")
    assert all(len(set(row.tolist())) == k for row in ids)
    agree = (ids == r_ids).float().mean()
    assert agree > 0.95, f"only {agree:.0%} of the ids agree with the reference"


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "cfg",
    [
        dict(B=19, N=301, D=24, bias=True, excl=True),
        dict(B=1, N=3000, D=64, bias=True, excl=True),
        dict(B=8, N=50, D=3, bias=False, excl=False),
        # more users than one group of the kernel (32), eight scored at a time plus a remainder; a partial last tile
        dict(B=70, N=1037, D=40, bias=True, excl=True),
    ],
)
@pytest.mark.parametrize("k", [1, 10, 40])
def test_topk_matches_reference(fmt, cfg, k):
    Q, E, kw = make_catalog_case(**cfg)
    rows, scale_bias = quantize_rows(E, fmt)
    scores, ids = quantized_catalog_topk(Q, rows, scale_bias, k, **kw)
    assert_same_topk(Q, rows, scale_bias, k, kw, scores, ids)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("B", [1, 5, 8, 9, 16])
@pytest.mark.parametrize("D", [7, 16, 64])
def test_topk_small_batches_match_reference(fmt, B, D):
    """Small batches split the catalog over the threads in blocks (three here, the last one partial); up to 8 rows
    read the stored rows directly (16 items at a time, masked to D, plus a tail), more through a widened block."""
    Q, E, kw = make_catalog_case(B=B, N=2500, D=D, seed=B * D)
    rows, scale_bias = quantize_rows(E, fmt)
    for k in (1, 10):
        scores, ids = quantized_catalog_topk(Q, rows, scale_bias, k, **kw)
        assert_same_topk(Q, rows, scale_bias, k, kw, scores, ids)


@pytest.mark.parametrize("fmt", FORMATS)
def test_topk_whole_tiny_catalog(fmt):
    Q, E, _ = make_catalog_case(B=2, N=3, D=5, bias=False, excl=False)
    rows, scale_bias = quantize_rows(E, fmt)
    scores, ids = quantized_catalog_topk(Q, rows, scale_bias, 3)
    assert_same_topk(Q, rows, scale_bias, 3, {}, scores, ids)


@pytest.mark.parametrize("fmt", FORMATS)
def test_topk_ties_go_to_lower_id(fmt):
    E = torch.zeros(70, 4)
    E[:, 0] = torch.tensor([float(i % 5) for i in range(70)])  # exact in both formats; every value 14 times
    rows, scale_bias = quantize_rows(E, fmt)
    Q = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    scores, ids = quantized_catalog_topk(Q, rows, scale_bias, 20)
    assert ids[0].tolist() == list(range(4, 70, 5)) + [3, 8, 13, 18, 23, 28]
    assert scores[0, :14].eq(4.0).all()


@pytest.mark.parametrize("fmt", FORMATS)
def test_topk_excluded_items_never_returned_even_when_best(fmt):
    Q, E, _ = make_catalog_case(B=3, N=200, D=16, bias=False, excl=False)
    rows, scale_bias = quantize_rows(E, fmt)
    _, best = quantized_catalog_topk(Q, rows, scale_bias, 5)
    off = torch.tensor([0, 5, 5, 10])
    ex = torch.cat([best[0], best[2]])
    _, ids = quantized_catalog_topk(Q, rows, scale_bias, 5, exclude_offsets=off, exclude_ids=ex.to(torch.int32))
    assert not set(ids[0].tolist()) & set(best[0].tolist())
    assert torch.equal(ids[1], best[1])
    assert not set(ids[2].tolist()) & set(best[2].tolist())


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("pooling", ["sum", "mean"])
def test_embedding_bag_matches_reference(fmt, pooling):
    weights, table_offsets, ids, offsets, _ = make_bag_inputs(5, [30, 7, 50], batch=6, dim=12)
    rows, scale_bias = quantize_rows(weights, fmt)
    out = quantized_embedding_bag(rows, scale_bias, table_offsets, ids, offsets, pooling)
    expected = ref.quantized_embedding_bag_reference(rows, scale_bias, table_offsets, ids, offsets, pooling)
    assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_embedding_bag_empty_bags_pool_to_zero():
    rows, scale_bias = quantize_rows(torch.randn(10, 4), "int8")
    offsets = torch.tensor([0, 0, 2, 2])
    out = quantized_embedding_bag(rows, scale_bias, torch.tensor([0, 10]), torch.tensor([1, 9]), offsets, "mean")
    assert out[0].eq(0).all() and out[2].eq(0).all()
    assert_close(out[1], dequantize_rows(rows, scale_bias)[[1, 9]].mean(0))


def _int8_case():
    Q, E, _ = make_catalog_case(B=2, N=30, D=4, bias=False, excl=False)
    rows, sb = quantize_rows(E, "int8")
    return Q, rows, sb


@pytest.mark.parametrize(
    "call,exc,match",
    [
        (lambda Q, r, sb: quantized_catalog_topk(Q, r, None, 3), ValueError, "scale_bias"),
        (lambda Q, r, sb: quantized_catalog_topk(Q, r.float(), sb, 3), TypeError, "rows"),
        (lambda Q, r, sb: quantized_catalog_topk(Q.double(), r, sb, 3), TypeError, "Q"),
        (lambda Q, r, sb: quantized_catalog_topk(Q[:, :3], r, sb, 3), ValueError, "dims differ"),
        (lambda Q, r, sb: quantized_catalog_topk(Q, r, sb, 0), ValueError, "k"),
        (lambda Q, r, sb: quantized_catalog_topk(Q, r, sb, 31), ValueError, "k"),
        (lambda Q, r, sb: quantized_catalog_topk(Q, r, sb[:5], 3), ValueError, "scale_bias"),
        (lambda Q, r, sb: quantized_catalog_topk(Q, r, sb, 3, bias=torch.zeros(29)), ValueError, "bias"),
        (
            lambda Q, r, sb: quantized_catalog_topk(
                Q, r, sb, 3, exclude_offsets=torch.tensor([0, 1, 2]), exclude_ids=torch.tensor([0, 30])
            ),
            IndexError,
            "exclude_ids",
        ),
        (
            lambda Q, r, sb: quantized_catalog_topk(Q, r, sb, 3, exclude_offsets=torch.tensor([0, 1, 2])),
            ValueError,
            "give both",
        ),
        (
            lambda Q, r, sb: quantized_catalog_topk(
                Q, r, sb, 30, exclude_offsets=torch.tensor([0, 1, 1]), exclude_ids=torch.tensor([4])
            ),
            ValueError,
            "k: 30 exceeds",
        ),
        (lambda Q, r, sb: quantized_catalog_topk(Q * float("nan"), r, sb, 3), ValueError, "Q"),
        (
            lambda Q, r, sb: quantized_embedding_bag(
                r, sb, torch.tensor([0, 30]), torch.tensor([30]), torch.tensor([0, 1])
            ),
            IndexError,
            "id 30",
        ),
        (
            lambda Q, r, sb: quantized_embedding_bag(
                r, sb, torch.tensor([0, 29]), torch.tensor([3]), torch.tensor([0, 1])
            ),
            ValueError,
            "table_offsets",
        ),
        (
            lambda Q, r, sb: quantized_embedding_bag(
                r, sb, torch.tensor([0, 30]), torch.tensor([3]), torch.tensor([0, 2])
            ),
            ValueError,
            "offsets",
        ),
        (
            lambda Q, r, sb: quantized_embedding_bag(
                r, sb, torch.tensor([0, 30]), torch.tensor([3]), torch.tensor([0, 1]), pooling="max"
            ),
            ValueError,
            "pooling",
        ),
    ],
)
def test_bad_input_raises_naming_the_argument(call, exc, match):
    Q, rows, sb = _int8_case()
    with pytest.raises(exc, match=match):
        call(Q, rows, sb)


@pytest.mark.parametrize("fmt", FORMATS)
def test_opcheck(fmt):
    Q, E, kw = make_catalog_case(B=5, N=80, D=8)
    rows, sb = quantize_rows(E, fmt)
    torch.library.opcheck(
        torch.ops.recengine.quantized_catalog_topk.default,
        (Q, rows, sb, 4, kw["bias"], kw["exclude_offsets"], kw["exclude_ids"]),
    )
    weights, table_offsets, ids, offsets, _ = make_bag_inputs(1, [20, 9], batch=3, dim=8)
    rows, sb = quantize_rows(weights, fmt)
    torch.library.opcheck(
        torch.ops.recengine.quantized_embedding_bag.default,
        (rows, sb, table_offsets, ids.to(torch.int64), offsets, "mean"),
    )
