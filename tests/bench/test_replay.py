"""recengine.bench.replay: the W4 workload's fused DQN step agrees with its plain-PyTorch twin."""

import torch

from tests.helpers import assert_close


def test_w4_dqn_step_matches_the_plain_pytorch_step():
    """The benchmark's fused DQN step and its plain-PyTorch twin agree on a small catalog: same argmax,
    same loss, and after one Adam step the same MLP and the same table (on the first step, lazy Adam on
    the touched rows equals dense Adam: untouched rows have zero moments and move by 0)."""
    from recengine.bench import replay as bench_replay

    num_items, dim, hidden, history, batch = 300, 16, 32, 5, 8
    data = bench_replay._w4_batch(num_items, history, batch, 0.9, "cpu", torch.Generator().manual_seed(0))
    ours, ours_mlp, ours_table = bench_replay._w4_recengine_step(num_items, dim, hidden, data, "cpu", 1e-3)
    ref, ref_mlp, ref_table = bench_replay._w4_reference_step(num_items, dim, hidden, data, "cpu", 1e-3)
    loss, best = ours()
    rloss, rbest = ref()
    assert torch.equal(best, rbest)
    assert_close(loss, rloss, rtol=1e-5, atol=1e-6, name="loss")
    for p, q in zip(ours_mlp.parameters(), ref_mlp.parameters()):
        assert_close(p, q, rtol=1e-4, atol=1e-6, name="mlp after one step")
    assert_close(ours_table, ref_table, rtol=1e-4, atol=1e-6, name="table after one step")
    assert not torch.equal(ours_table, bench_replay._w4_recengine_step(num_items, dim, hidden, data, "cpu", 1e-3)[2])
