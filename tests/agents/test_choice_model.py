"""The slate choice model: the conditional logit with a no-click option, by hand and by its likelihood."""

import math

import pytest
import torch

from recengine.agents.choice_model import choice_nll, slate_choice_log_probs, slate_value


def test_choice_probabilities_by_hand():
    pi = torch.tensor([[0.2, 0.1, 0.05]])
    c = math.log(0.25)
    p = slate_choice_log_probs(pi.log(), c).exp()
    denom = 0.25 + 0.35
    assert torch.allclose(p, torch.tensor([[0.2, 0.1, 0.05, 0.25]]) / denom)
    assert torch.allclose(p.sum(1), torch.ones(1))


def test_per_row_no_click_logit_and_value():
    log_pi = torch.log(torch.tensor([[0.5, 0.5], [0.1, 0.3]]))
    c = torch.tensor([0.0, math.log(0.6)])
    p = slate_choice_log_probs(log_pi, c).exp()
    assert torch.allclose(p[0], torch.tensor([0.25, 0.25, 0.5]))
    assert torch.allclose(p[1], torch.tensor([0.1, 0.3, 0.6]))
    v = slate_value(log_pi, c, torch.tensor([[2.0, 4.0], [1.0, 1.0]]), torch.tensor([1.0, 0.0]))
    assert torch.allclose(v, torch.tensor([0.25 * 2 + 0.25 * 4 + 0.5, 0.4]))


def test_maximum_likelihood_recovers_the_true_choice_model():
    """Outcomes drawn from a known conditional logit: fitting π and c by choice_nll recovers them."""
    g = torch.Generator().manual_seed(0)
    true_logits, true_c = torch.tensor([2.0, 1.0, 0.0, -1.0, 0.5, 1.5]), -0.5
    true_log_pi = torch.log_softmax(true_logits, 0)
    slates = torch.stack([torch.randperm(6, generator=g)[:3] for _ in range(4000)])
    probs = slate_choice_log_probs(true_log_pi[slates], true_c).exp()
    outcome = torch.multinomial(probs, 1, generator=g).squeeze(1)
    logits, c = torch.zeros(6, requires_grad=True), torch.zeros((), requires_grad=True)
    opt = torch.optim.Adam([logits, c], lr=0.05)
    for _ in range(400):
        opt.zero_grad()
        choice_nll(torch.log_softmax(logits, 0)[slates], c, outcome).backward()
        opt.step()
    fitted = torch.log_softmax(logits.detach(), 0)
    assert torch.equal(fitted.argsort(), true_log_pi.argsort())
    assert abs(float(c.detach()) - true_c) < 0.15
    assert torch.allclose(fitted, true_log_pi, atol=0.15)


def test_bad_outcomes_are_refused():
    log_pi = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="outcome"):
        choice_nll(log_pi, 0.0, torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="outcome"):
        choice_nll(log_pi, 0.0, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="log_pi_slate"):
        slate_choice_log_probs(torch.zeros(3), 0.0)
