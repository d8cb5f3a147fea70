"""The top-K off-policy correction (Chen et al. 2019) against hand-computed values."""

import math

import pytest
import torch

from recengine.agents.topk_correction import corrected_pg_loss, importance_weight, topk_multiplier
from tests.helpers import assert_close


def test_lambda_hand_computed():
    pi = torch.tensor([0.5, 0.1, 0.9, 1e-6], dtype=torch.float64)
    # K (1 - π)^(K-1) by hand for K = 3: 3*0.25, 3*0.81, 3*0.01, 3*(1-1e-6)^2
    expected = torch.tensor([0.75, 2.43, 0.03, 3 * (1 - 1e-6) ** 2], dtype=torch.float64)
    assert_close(topk_multiplier(pi.log(), 3), expected, rtol=1e-12, atol=1e-12, name="lambda_3")
    # K = 1: no correction
    assert_close(topk_multiplier(pi.log(), 1), torch.ones(4, dtype=torch.float64), name="lambda_1")
    # K = 2, π = 0.25 -> 2 * 0.75 = 1.5
    assert topk_multiplier(torch.tensor([math.log(0.25)]), 2).item() == pytest.approx(1.5)


def test_lambda_is_derivative_of_slate_inclusion_probability():
    # α(π) = 1 - (1 - π)^K; λ_K = dα/dπ
    pi = torch.tensor([0.02, 0.3, 0.7], dtype=torch.float64, requires_grad=True)
    k = 5
    alpha = 1 - (1 - pi) ** k
    (grad,) = torch.autograd.grad(alpha.sum(), pi)
    assert_close(topk_multiplier(pi.detach().log(), k), grad, rtol=1e-12, atol=1e-12, name="dalpha/dpi")


def test_lambda_stable_at_extremes():
    lam = topk_multiplier(torch.tensor([0.0, -1e-12, -80.0]), 10)
    assert torch.isfinite(lam).all()
    assert lam[0].item() == 0.0  # π = 1: already in every slate
    assert lam[2].item() == pytest.approx(10.0)  # π ≈ 0: full K
    with pytest.raises(ValueError, match="k"):
        topk_multiplier(torch.zeros(1), 0)


def test_importance_weight_clipped():
    log_pi = torch.log(torch.tensor([0.2, 0.5, 0.01]))
    log_beta = torch.log(torch.tensor([0.1, 0.01, 0.02]))
    # ratios 2, 50, 0.5 -> clipped at 10
    assert_close(importance_weight(log_pi, log_beta, 10.0), torch.tensor([2.0, 10.0, 0.5]), rtol=1e-6, name="w")
    assert_close(importance_weight(log_pi, log_beta, None), torch.tensor([2.0, 50.0, 0.5]), rtol=1e-5, name="w")


def test_corrected_loss_gradient_matches_hand_formula():
    # gradient of the surrogate w.r.t. log π_i is  -w_i λ_i R_i / n
    pi = torch.tensor([0.2, 0.05, 0.6], dtype=torch.float64)
    beta = torch.tensor([0.1, 0.5, 0.6], dtype=torch.float64)
    returns = torch.tensor([1.0, 2.0, -1.0], dtype=torch.float64)
    log_pi = pi.log().requires_grad_(True)
    loss, stats = corrected_pg_loss(log_pi, returns, 4, log_beta=beta.log(), clip=1.5)
    (grad,) = torch.autograd.grad(loss, log_pi)
    w = torch.tensor([1.5, 0.1, 1.0], dtype=torch.float64)  # min(2, 1.5), 0.1, 1
    lam = 4 * (1 - pi) ** 3
    assert_close(grad, -w * lam * returns / 3, rtol=1e-10, atol=1e-12, name="grad")
    assert stats["mean_weight"] == pytest.approx(float(w.mean()))
    # on-policy, no correction: plain REINFORCE
    loss, _ = corrected_pg_loss(log_pi, returns, 4, topk=False)
    (grad,) = torch.autograd.grad(loss, log_pi)
    assert_close(grad, -returns / 3, rtol=1e-12, atol=1e-12, name="plain grad")
