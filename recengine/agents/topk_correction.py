"""The top-K off-policy correction of Chen et al. 2019 ("Top-K Off-Policy Correction for a REINFORCE
Recommender System"), as pure functions of log-probabilities.

A slate of K items drawn from a softmax policy π contains item a with probability α(a|s) = 1 − (1 − π(a|s))^K.
REINFORCE on α instead of π multiplies each per-item term by

    λ_K(s, a) = ∂α/∂π = K (1 − π(a|s))^(K−1),

which keeps pushing items whose π is still small and stops pushing items that already are in nearly every
slate. When the data were logged by another policy β, each term is also weighted by the (clipped)
importance ratio min(π(a|s) / β(a|s), c). The surrogate loss whose gradient is the corrected estimator is

    L = − mean_i [ w_i · λ_K,i · R_i · log π(a_i|s_i) ],   w and λ held constant (no gradient through them).
"""

from __future__ import annotations

import torch


def topk_multiplier(log_pi: torch.Tensor, k: int) -> torch.Tensor:
    """λ_K = K (1 − π)^(K−1) for π = exp(log_pi), computed stably as K · exp((K−1) · log(1 − π))."""
    if k < 1:
        raise ValueError(f"k: expected a slate size >= 1, got {k}")
    log_pi = log_pi.clamp(max=0.0)
    if k == 1:
        return torch.ones_like(log_pi)
    # log(1 - π) = log(-expm1(log π)); -expm1 is accurate for π near 0 and near 1
    log1m_pi = torch.log(-torch.expm1(log_pi))
    return k * torch.exp((k - 1) * log1m_pi)


def importance_weight(log_pi: torch.Tensor, log_beta: torch.Tensor, clip: float | None) -> torch.Tensor:
    """min(π / β, clip) (no cap when clip is None)."""
    w = torch.exp(log_pi - log_beta)
    if clip is not None:
        w = w.clamp(max=clip)
    return w


def corrected_pg_loss(
    log_pi: torch.Tensor,
    returns: torch.Tensor,
    k: int,
    *,
    log_beta: torch.Tensor | None = None,
    clip: float | None = 10.0,
    topk: bool = True,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The REINFORCE surrogate loss with the top-K correction and (when `log_beta` is given) clipped importance
    weights; `log_pi` carries the gradient, the weights do not. Returns (loss, diagnostics)."""
    with torch.no_grad():
        weight = torch.ones_like(log_pi)
        if log_beta is not None:
            weight = importance_weight(log_pi, log_beta, clip)
        lam = topk_multiplier(log_pi, k) if topk else torch.ones_like(log_pi)
        coef = weight * lam * returns
    loss = -(coef * log_pi).mean()
    stats = {"mean_weight": float(weight.mean()), "mean_lambda": float(lam.mean())}
    return loss, stats
