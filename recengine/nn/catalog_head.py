"""CatalogHead: scores user states against the whole item catalog through the policy operators.

    theta(a, s) = <q_s, e_a> + b_a        (divided by `temperature`)

over ALL items a = 0..num_items-1, never materialising the (B, N) logits on the hot paths: the training loss is
`recengine.ops.catalog_cross_entropy` (full softmax, no sampling), inference is `recengine.ops.catalog_topk`
(seen items excluded through a per-user CSR list), exploration is `recengine.ops.catalog_sample`.
"""

from __future__ import annotations

import torch
from torch import nn

from recengine import ops
from recengine.nn.gather_rows import gather_rows
from recengine.ops._checks import check_choice, check_number
from recengine.ops.policy import REDUCTIONS

MASKED_LOGIT = -1.0e4
"""a bias that keeps an item out of the softmax (its probability underflows in float32): how items never seen in
training are masked while it runs (``recengine.train.cold_items``)"""


class CatalogHead(nn.Module):
    """theta(a, s) = (<q_s, e_a> + b_a) / temperature against an item table E (N, dim).

    Args:
        num_items: N, the catalog size (item ids 0..N-1).
        dim: the state / item-vector width D.
        bias: learn a per-item bias b (N,) (initialised to 0).
        own_table: hold a separate item table ``self.weight`` (N, D) (an untied head). With the default
            ``own_table=False`` the table is passed to every call: tied to the encoder's input embeddings,
            ``head.loss(states, targets, encoder.item_embeddings())``.
        temperature: divides the logits.

    Every method takes states Q (B, D) float32 and, for a tied head, ``item_table`` E (N, D); the exclusion
    arguments are a per-row CSR list of items that must not score (``exclude_offsets`` (B+1,) int64,
    ``exclude_ids`` int32/int64), e.g. the user's already-seen items.
    """

    def __init__(
        self, num_items: int, dim: int, *, bias: bool = True, own_table: bool = False, temperature: float = 1.0
    ):
        super().__init__()
        if num_items < 1 or dim < 1:
            raise ValueError(f"num_items and dim must be >= 1, got {num_items}, {dim}")
        self.num_items, self.dim, self.temperature = num_items, dim, float(temperature)
        self.weight = nn.Parameter(torch.randn(num_items, dim) * dim**-0.5) if own_table else None
        self.bias = nn.Parameter(torch.zeros(num_items)) if bias else None

    def table(self, item_table: torch.Tensor | None = None) -> torch.Tensor:
        """The item table E the head scores against: its own, or the one passed in (tied)."""
        if item_table is None:
            if self.weight is None:
                raise ValueError("item_table: this head is tied (own_table=False); pass the encoder's item table")
            return self.weight
        if item_table.shape != (self.num_items, self.dim):
            raise ValueError(
                f"item_table: expected shape ({self.num_items}, {self.dim}), got {tuple(item_table.shape)}"
            )
        return item_table

    def _kw(self, exclude_offsets, exclude_ids, bias=None) -> dict:
        return dict(
            bias=self.bias if bias is None else bias,
            temperature=self.temperature,
            exclude_offsets=exclude_offsets,
            exclude_ids=exclude_ids,
        )

    def unknown_bias(self) -> torch.Tensor:
        """The bias of an item the model knows nothing of by id (a cold one): the mean bias of the items in the
        softmax (those above ``MASKED_LOGIT / 2``, i.e. not masked out), detached; 0 without a bias or items."""
        if self.bias is None:
            return torch.zeros(())
        bias = self.bias.detach()
        known = bias > MASKED_LOGIT / 2
        return bias[known].mean() if bool(known.any()) else torch.zeros((), device=bias.device)

    def loss(
        self,
        states: torch.Tensor,
        targets: torch.Tensor,
        item_table: torch.Tensor | None = None,
        *,
        exclude_offsets=None,
        exclude_ids=None,
        reduction: str = "mean",
        unknown: torch.Tensor | None = None,
        label_smoothing: float = 0.0,
    ) -> torch.Tensor:
        """Full-catalog softmax cross-entropy of the target items (M,) int64 given states (M, D). `unknown` (N,)
        bool marks items scored with ``unknown_bias()`` instead of their own bias (item-id dropout: an item
        whose id is dropped loses what its id learned, its bias too, as a cold item has).

        ``label_smoothing`` ε in [0, 1): the target distribution is (1 - ε) on the target plus ε spread evenly
        over the catalog's items that are not masked out (bias above ``MASKED_LOGIT / 2``), as
        ``torch.nn.functional.cross_entropy(label_smoothing=ε)`` over those items. It costs no second pass over
        the catalog: the smoothed loss is CE + ε (s_target - mean_i s_i), and the mean score is the state
        against the items' mean vector. Not combined with exclusions (ValueError)."""
        check_choice("reduction", reduction, REDUCTIONS)
        eps = check_number("label_smoothing", label_smoothing, minimum=0.0)
        if eps >= 1.0:
            raise ValueError(f"label_smoothing: must be < 1, got {label_smoothing}")
        if eps and (exclude_offsets is not None or exclude_ids is not None):
            raise ValueError("label_smoothing: not supported with exclude_offsets / exclude_ids")
        bias = self.bias
        if unknown is not None and bias is not None:
            if unknown.shape != (self.num_items,) or unknown.dtype != torch.bool:
                raise ValueError(f"unknown: expected a ({self.num_items},) bool tensor, got {tuple(unknown.shape)}")
            bias = torch.where(unknown & (bias.detach() > MASKED_LOGIT / 2), self.unknown_bias(), bias)
        table = self.table(item_table).contiguous()
        loss = ops.catalog_cross_entropy(
            states.contiguous(),
            table,
            targets,
            reduction="none" if eps else reduction,
            **self._kw(exclude_offsets, exclude_ids, bias),
        )
        if not eps:
            return loss
        loss = loss + eps * self._target_minus_mean_score(states, targets, table, bias)
        return loss.mean() if reduction == "mean" else loss.sum() if reduction == "sum" else loss

    def _target_minus_mean_score(self, states, targets, table, bias) -> torch.Tensor:
        """(M,) s_target - mean_i s_i over the items not masked out (the label-smoothing term), s = (q·e + b) / T."""
        known = torch.ones(self.num_items, device=table.device, dtype=table.dtype)
        if bias is not None:
            known = (bias.detach() > MASKED_LOGIT / 2).to(table.dtype)
        weights = known / known.sum().clamp_min(1.0)
        target_score = (states * gather_rows(table, targets)).sum(-1)
        mean_score = states @ (weights @ table)
        if bias is not None:
            target_score = target_score + gather_rows(bias, targets)
            mean_score = mean_score + weights @ bias
        return (target_score - mean_score) / self.temperature

    def topk(
        self,
        states: torch.Tensor,
        k: int,
        item_table: torch.Tensor | None = None,
        *,
        exclude_offsets=None,
        exclude_ids=None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(scores (B, k), ids (B, k) int64): the k best items per state, descending, ties by lower id."""
        return ops.catalog_topk(
            states.contiguous(), self.table(item_table).contiguous(), k, **self._kw(exclude_offsets, exclude_ids)
        )

    def sample(
        self,
        states: torch.Tensor,
        k: int,
        seed: int,
        item_table: torch.Tensor | None = None,
        *,
        exclude_offsets=None,
        exclude_ids=None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids (B, k), log_probs (B, k)): k distinct items drawn from softmax(theta) (counter-based, `seed`)."""
        return ops.catalog_sample(
            states.contiguous(), self.table(item_table).contiguous(), k, seed, **self._kw(exclude_offsets, exclude_ids)
        )

    def logsumexp(
        self, states: torch.Tensor, item_table: torch.Tensor | None = None, *, exclude_offsets=None, exclude_ids=None
    ) -> torch.Tensor:
        """(B,): log sum_a exp(theta(a, s)), the softmax policy's normaliser."""
        return ops.catalog_logsumexp(
            states.contiguous(), self.table(item_table).contiguous(), **self._kw(exclude_offsets, exclude_ids)
        )

    def forward(self, states: torch.Tensor, item_table: torch.Tensor | None = None) -> torch.Tensor:
        """The full (B, N) logits (materialised: for small batches, inspection and tests)."""
        logits = states @ self.table(item_table).T
        if self.bias is not None:
            logits = logits + self.bias
        return logits / self.temperature
