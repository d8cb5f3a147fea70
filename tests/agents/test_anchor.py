"""The KL anchor: zero at the reference, positive elsewhere, by hand on a two-item catalogue, exclusions honoured."""

import torch
from torch import nn

from recengine.agents.anchor import frozen_copy, masked_log_softmax, policy_kl


class Fixed(nn.Module):
    """A scorer whose state is the same for every history: Q = 1 (B, 1), E (N, 1) learnable, no bias."""

    def __init__(self, values):
        super().__init__()
        self.E = nn.Parameter(torch.tensor(values).unsqueeze(1))

    def forward(self, hist):
        return torch.ones(hist.shape[0], 1), self.E, torch.zeros(self.E.shape[0])


def test_zero_at_the_reference_and_by_hand_elsewhere():
    scorer = Fixed([1.0, 0.0])
    ref = frozen_copy(scorer)
    hist = torch.full((3, 2), -1)
    assert float(policy_kl(scorer, ref, hist)) == 0.0
    with torch.no_grad():
        scorer.E[0] = 0.0
    p = torch.softmax(torch.tensor([1.0, 0.0]), 0)
    want = float((p * (p.log() - torch.log(torch.tensor([0.5, 0.5])))).sum())
    assert abs(float(policy_kl(scorer, ref, hist)) - want) < 1e-6
    assert not any(q.requires_grad for q in ref.parameters())


def test_excluded_items_leave_both_softmaxes():
    scorer, ref = Fixed([0.0, 5.0, 1.0]), Fixed([3.0, -5.0, 1.0])
    offsets, ids = torch.tensor([0, 1]), torch.tensor([1])  # item 1 excluded
    lp = masked_log_softmax(*scorer(torch.zeros(1, 1)), offsets, ids)
    assert lp[0, 1] == float("-inf") and torch.allclose(lp[0, [0, 2]].exp().sum(), torch.tensor(1.0))
    kl = policy_kl(scorer, ref, torch.zeros(1, 1, dtype=torch.int64), offsets, ids)
    assert torch.isfinite(kl) and float(kl) > 0


def test_the_gradient_pulls_towards_the_reference():
    scorer, ref = Fixed([0.0, 0.0]), Fixed([2.0, 0.0])
    opt = torch.optim.SGD(scorer.parameters(), lr=1.0)
    before = float(policy_kl(scorer, ref, torch.zeros(4, 1)))
    for _ in range(50):
        opt.zero_grad()
        policy_kl(scorer, ref, torch.zeros(4, 1)).backward()
        opt.step()
    assert float(policy_kl(scorer, ref, torch.zeros(4, 1))) < 0.05 * before
