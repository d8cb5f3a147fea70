"""BPR matrix factorisation: it learns what popularity cannot."""

from __future__ import annotations

from recengine.agents.mf import BPRConfig, evaluate_bpr, train_bpr
from recengine.data import histories_of, leave_one_out, make_synthetic
from recengine.eval.offline import evaluate_pop


def test_bpr_beats_pop_on_synthetic():
    data = make_synthetic(300, 120, seed=0, sequence_weight=0.0, user_weight=4.0)
    split = leave_one_out(histories_of(data))
    model, info = train_bpr(split, BPRConfig(dim=16, epochs=15, eval_every=5, lr=1e-2), progress=False)
    bpr, pop = evaluate_bpr(model, split, "test"), evaluate_pop(split, "test")
    assert bpr["ndcg@10"] > pop["ndcg@10"] + 0.02, (bpr, pop)


def test_bpr_fitting_leaves_the_global_rng_state_as_it_was():
    import torch

    split = leave_one_out(histories_of(make_synthetic(60, 30, seed=1)))
    before = torch.random.get_rng_state()
    train_bpr(split, BPRConfig(dim=4, epochs=1, eval_every=1), progress=False)
    assert torch.equal(torch.random.get_rng_state(), before)
