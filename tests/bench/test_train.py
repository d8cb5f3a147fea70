"""bench train: the phase split computes the same gradients as one loss.backward(), and a quick workload reports
a consistent cost."""

import pytest
import torch

from recengine.bench.train import PHASES, TrainWorkload, backward_by_phase, format_table, measure
from recengine.nn.catalog_head import CatalogHead
from recengine.nn.sequence_encoder import SequenceEncoder
from recengine.nn.sequence_recommender import SequenceRecommender
from recengine.padding import PAD_ID


def model(seed):
    torch.manual_seed(seed)
    encoder = SequenceEncoder(40, 16, 8, num_layers=2, num_heads=2, dropout=0.0)
    return SequenceRecommender(encoder, CatalogHead(40, 16), use_users=False)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense lookup", "sparse lookup"])
def test_split_backward_gives_the_gradients_of_one_backward(sparse):
    x = torch.randint(0, 40, (5, 8))
    y = torch.randint(0, 40, (5, 8))
    x[1, 5:] = PAD_ID
    y[1, 5:] = PAD_ID
    a, b = model(3), model(3)
    a.encoder.sparse_input_grad = b.encoder.sparse_input_grad = sparse
    a.loss(x, y).backward()
    encoder_s, loss_s, keep = backward_by_phase(b, x, y)
    assert encoder_s > 0 and loss_s > 0 and int(keep.sum()) == 37
    grads = 0
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        if pa.grad is None:
            assert pb.grad is None, name
            continue
        assert not pa.grad.is_sparse and not pb.grad.is_sparse, name
        torch.testing.assert_close(pb.grad, pa.grad, rtol=1e-5, atol=1e-6, msg=name)
        grads += 1
    assert grads > 10


def test_quick_synthetic_workload_reports_every_phase():
    cost = measure(TrainWorkload("tiny", "synthetic", num_items=300, max_len=10, dim=16, batch_size=8, tokens=400))
    assert cost.tokens_timed >= 400 and cost.steps >= 5 and cost.num_items == 300
    assert set(cost.phase_seconds) == set(PHASES) and all(v >= 0 for v in cost.phase_seconds.values())
    assert abs(sum(cost.phase_seconds.values()) - cost.seconds) < 1e-9
    assert cost.epoch_seconds == cost.tokens_per_epoch * cost.seconds / cost.tokens_timed
    assert cost.item_state_mib == (300 * 16 + 300) * 16 / 2**20
    assert cost.peak_rss_mib >= cost.base_rss_mib > 0
    table = format_table([cost], "here")
    assert "| tiny | 300 |" in table and "catalog loss %" in table
    assert not cost.lean and table.rstrip().endswith("| standard |")  # auto: lean only from 100k items on
    lean = measure(
        TrainWorkload("tiny", "synthetic", num_items=300, max_len=10, dim=16, batch_size=8, tokens=100, memory="lean")
    )
    assert lean.lean and format_table([lean], "here").rstrip().endswith("| lean |")
