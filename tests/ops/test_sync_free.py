"""recengine.ops.sync_free on the CPU: the same results as the public ops they mirror."""

import torch

from recengine import ops
from recengine.ops.sync_free import NO_ERROR, catalog_argmax, embedding_bag_fused_update_static, embedding_bag_reported


def _bags():
    g = torch.Generator().manual_seed(0)
    weights = torch.randn(30, 4, generator=g)
    table_offsets = torch.tensor([0, 10, 30])
    ids = torch.tensor([1, 9, 9, 0, 19, 3, 3, 12])
    offsets = torch.tensor([0, 2, 4, 6, 8])
    return weights, table_offsets, ids, offsets


def test_catalog_argmax_is_the_top1_of_catalog_topk():
    g = torch.Generator().manual_seed(1)
    Q, E, bias = torch.randn(7, 5, generator=g), torch.randn(40, 5, generator=g), torch.randn(40, generator=g)
    assert torch.equal(catalog_argmax(Q, E, bias), ops.catalog_topk(Q, E, 1, bias=bias)[1][:, 0])


def test_embedding_bag_reported_pools_like_embedding_bag_and_reports_nothing():
    weights, table_offsets, ids, offsets = _bags()
    out, report = embedding_bag_reported(weights, table_offsets, ids, offsets, pooling="mean")
    torch.testing.assert_close(out, ops.embedding_bag(weights, table_offsets, ids, offsets, pooling="mean"))
    assert report.tolist() == [NO_ERROR] * 3


def test_static_fused_update_matches_the_public_update():
    weights, table_offsets, ids, offsets = _bags()
    grad = torch.randn(2, 8, generator=torch.Generator().manual_seed(2))
    ours, theirs = weights.clone(), weights.clone()
    states = [torch.zeros(30, 4) for _ in range(4)]
    embedding_bag_fused_update_static(
        grad,
        ours,
        table_offsets,
        ids,
        offsets,
        None,
        pooling="sum",
        optimizer="adam",
        lr=0.1,
        eps=1e-8,
        betas=(0.9, 0.999),
        state1=states[0],
        state2=states[1],
        step=torch.tensor(3),
    )
    ops.embedding_bag_fused_update(
        grad,
        theirs,
        table_offsets,
        ids,
        offsets,
        pooling="sum",
        optimizer="adam",
        lr=0.1,
        eps=1e-8,
        betas=(0.9, 0.999),
        state1=states[2],
        state2=states[3],
        step=3,
    )
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(states[0], states[2])
