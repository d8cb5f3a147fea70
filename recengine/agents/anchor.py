"""Conservative fine-tuning: the KL divergence from the large model's policy to the agent's, a penalty that keeps
an RL-tuned scorer near the supervised model it started from (its offline ranking of real next items with it).

    reference = frozen_copy(agent_scorer)                        # before any RL update
    loss = rl_loss + kl_weight * policy_kl(agent_scorer, reference, hist, offsets, ids)

KL(π_ref(·|s) || π(·|s)) over the items not excluded for s, averaged over the batch: the forward direction, the
cross-entropy of the agent's softmax against the large model's soft next-item distribution (what distillation
minimises), so the agent keeps the mass the large model puts on items and is free to reorder within it only as
far as the RL signal pays for the KL. It materialises the (B, N) logits of both scorers: fine for the catalogues
of the comparison (N in the thousands), a sampled estimate would be needed for millions of items.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["frozen_copy", "masked_log_softmax", "policy_kl"]


def frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy of `module` with no gradient, in evaluation mode (the reference policy)."""
    ref = copy.deepcopy(module)
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref.eval()


def masked_log_softmax(
    Q: torch.Tensor, E: torch.Tensor, bias: torch.Tensor, offsets: torch.Tensor | None, ids: torch.Tensor | None
) -> torch.Tensor:
    """(B, N) log softmax of Q E^T + bias over the items not excluded (excluded entries are -inf)."""
    logits = Q @ E.T + bias
    if offsets is not None and ids.numel():
        rows = torch.repeat_interleave(torch.arange(Q.shape[0]), offsets[1:] - offsets[:-1])
        logits = logits.index_put((rows, ids), torch.tensor(float("-inf")))
    return torch.log_softmax(logits, 1)


def policy_kl(
    scorer: nn.Module,
    reference: nn.Module,
    hist: torch.Tensor,
    offsets: torch.Tensor | None = None,
    ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean over the batch of KL(π_reference(·|s) || π_scorer(·|s)) for the (B, L) histories `hist`, the items of
    the CSR exclusion (offsets, ids) left out of both softmaxes; differentiable in `scorer` only."""
    with torch.no_grad():
        ref_log = masked_log_softmax(*reference(hist), offsets, ids)
    log = masked_log_softmax(*scorer(hist), offsets, ids)
    p_ref = ref_log.exp()
    finite = torch.isfinite(ref_log)
    terms = torch.where(finite, p_ref * (ref_log - log), torch.zeros_like(log))
    return terms.sum(1).mean()
