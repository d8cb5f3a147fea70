"""The slate choice model an agent learns from the clicks it observes (the conditional logit of SlateQ).

A user shown slate A in state s clicks item j in A, or nothing, with

    P(j | s, A) = π(j|s) / (e^c + Σ_{i in A} π(i|s)),        P(none | s, A) = e^c / (same),

π(·|s) the agent's softmax over the catalogue (its scorer, seen items excluded) and c a learned no-click logit:
the multinomial logit with a no-click option that SlateQ (Ie et al. 2019) decomposes a slate's value through.
Both are fitted by maximum likelihood on the (state, slate, outcome) triples the agent logged, never read from a
simulator: the clicks pull the clicked item up and, unlike a loss on the clicked items alone, every ignored slate
pushes its items down in proportion to how likely the model thought a click on them was.

    log_p = slate_choice_log_probs(log_pi_slate, no_click)      # (B, k + 1): the slate's items, then no click
    loss = choice_nll(log_pi_slate, no_click, outcome)          # outcome: clicked position, k = no click
    value = slate_value(log_pi_slate, no_click, item_q, none_q) # SlateQ: Σ_j P(j | s, A) Q(s, j)
"""

from __future__ import annotations

import torch

__all__ = ["choice_nll", "slate_choice_log_probs", "slate_value"]


def slate_choice_log_probs(log_pi_slate: torch.Tensor, no_click: torch.Tensor | float) -> torch.Tensor:
    """(B, k + 1) log P(click slate item j | s, A) for j < k, then log P(no click), from the slate items' log π
    (B, k) and the no-click logit c (a scalar or (B,))."""
    if log_pi_slate.dim() != 2:
        raise ValueError(f"log_pi_slate: expected (B, k), got shape {tuple(log_pi_slate.shape)}")
    c = torch.as_tensor(no_click, dtype=log_pi_slate.dtype, device=log_pi_slate.device)
    c = c.expand(log_pi_slate.shape[0]).unsqueeze(1) if c.dim() <= 1 else c
    z = torch.cat([log_pi_slate, c], 1)
    return z - torch.logsumexp(z, 1, keepdim=True)


def choice_nll(log_pi_slate: torch.Tensor, no_click: torch.Tensor | float, outcome: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood of the observed outcomes (B,) int64: the clicked slate position, or k (the
    slate size) for no click."""
    k = log_pi_slate.shape[1]
    if outcome.shape != (log_pi_slate.shape[0],) or outcome.dtype != torch.int64:
        raise ValueError(
            f"outcome: expected ({log_pi_slate.shape[0]},) int64, got {outcome.dtype} {tuple(outcome.shape)}"
        )
    if outcome.numel() and (int(outcome.min()) < 0 or int(outcome.max()) > k):
        raise ValueError(f"outcome: positions must be in [0, {k}] ({k} = no click)")
    log_p = slate_choice_log_probs(log_pi_slate, no_click)
    return -log_p.gather(1, outcome.unsqueeze(1)).mean()


def slate_value(
    log_pi_slate: torch.Tensor, no_click: torch.Tensor | float, item_q: torch.Tensor, none_q: torch.Tensor
) -> torch.Tensor:
    """(B,) SlateQ's decomposition of a slate's value: Σ_{j in A} P(j | s, A) Q(s, j) + P(none | s, A) Q(s, none),
    item_q (B, k) the slate items' long-term values, none_q (B,) the value of no click."""
    p = slate_choice_log_probs(log_pi_slate, no_click).exp()
    return (p[:, :-1] * item_q).sum(1) + p[:, -1] * none_q
