"""ScoreEnsemble: several trained large models over one catalog, ranked as one by the sum of their scores.

The sum of the members' logits ranks items as the product of their softmax distributions does (each member's
log-normaliser is a constant per user), so this is a product of experts: an item ranks high only where every
member gives it weight. It needs no new parameters and no training: each member is trained on its own (different
widths, seeds or settings, each chosen on the validation split), and the ensemble is scored as one model with
the concatenated states against the concatenated item tables,

    score(a | history) = sum_m (<q_m, E_m[a]> + b_m[a]) / T_m = <[q_1/T_1, ..., q_M/T_M], [E_1, ..., E_M][a]> + b[a]

so every full-catalog path (``recengine.eval.offline.evaluate_model``, ``catalog_topk``) ranks it through the same
fused operator as a single model, at the summed width.

    ensemble = ScoreEnsemble([load_model("runs/a/model.safetensors")[0], load_model("runs/b/model.safetensors")[0]])
    evaluate_model(ensemble, split, "test")
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from recengine.nn.sequence_recommender import SequenceRecommender


class ScoreEnsemble(nn.Module):
    """The members' scores summed: `user_states` and `scoring_table` as a SequenceRecommender has them.

    Args:
        members: the trained models (at least one), all over the same catalog (the same number of items, in the
            same order: the caller compares their item vocabularies, as `recengine evaluate` does).
    """

    def __init__(self, members: Sequence[SequenceRecommender]):
        super().__init__()
        members = list(members)
        if not members:
            raise ValueError("members: an ensemble needs at least one model")
        for i, m in enumerate(members):
            if not isinstance(m, SequenceRecommender):
                raise TypeError(f"members[{i}]: expected a SequenceRecommender, got {type(m).__name__}")
        sizes = [m.head.num_items for m in members]
        if len(set(sizes)) != 1:
            raise ValueError(f"members: every model must score the same catalog, got catalogs of {sizes} items")
        self.members = nn.ModuleList(members)
        self.num_items = sizes[0]

    @property
    def window_length(self) -> int:
        """The longest window of a member (each reads its own most recent items of the history it is given)."""
        return max(m.window_length for m in self.members)

    @torch.no_grad()
    def user_states(self, histories: torch.Tensor, users: torch.Tensor | None = None) -> torch.Tensor:
        """(B, sum of the members' widths): each member's state, divided by its head's temperature, side by side."""
        return torch.cat([m.user_states(histories, users) / m.head.temperature for m in self.members], dim=1)

    def scoring_table(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(E (N, sum of widths), b (N,) or None): the members' tables side by side, their biases (each divided by
        its temperature) summed; None when no member has a bias."""
        parts = [m.scoring_table() for m in self.members]
        table = torch.cat([t for t, _ in parts], dim=1)
        biases = [b / m.head.temperature for (_, b), m in zip(parts, self.members) if b is not None]
        return table, (torch.stack(biases).sum(0) if biases else None)
