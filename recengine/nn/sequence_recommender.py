"""SequenceRecommender: the large model as one module, the SequenceEncoder and its tied CatalogHead.

The encoder turns a window of item ids into one state per position; the head scores a state against every
item through the policy op (its item table is the encoder's own `item_embeddings()`, so the input and output
item vectors are the same parameters). How it is built from a dataset and trained lives in
`recengine.train.sasrec`; how it is saved and rebuilt, in `recengine.nn.persistence` (on the file format of
`recengine.checkpoint`).
"""

from __future__ import annotations

import torch
from torch import nn

from recengine.nn.catalog_head import CatalogHead
from recengine.nn.sequence_encoder import SequenceEncoder
from recengine.padding import PAD_ID


class _GradientLast(torch.autograd.Function):
    """The identity; its gradient goes on unchanged (used for the order in which gradients reach a leaf)."""

    @staticmethod
    def forward(ctx, table: torch.Tensor) -> torch.Tensor:
        return table.view_as(table)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad


class SequenceRecommender(nn.Module):
    """The encoder and its tied catalog head; `use_users` adds the user's feature vector at every position."""

    def __init__(self, encoder: SequenceEncoder, head: CatalogHead, use_users: bool):
        super().__init__()
        self.encoder, self.head, self.use_users = encoder, head, use_users

    def loss(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        users: torch.Tensor | None = None,
        *,
        label_smoothing: float = 0.0,
    ) -> torch.Tensor:
        """Mean next-item cross-entropy over the full catalog at every target of the windows that is not PAD_ID
        (``label_smoothing`` as in CatalogHead.loss).

        ValueError when every target is PAD_ID. Under torch.compile(fullgraph=True) the targets kept are a batch
        whose size depends on the data: set ``torch._dynamo.config.capture_dynamic_output_shape_ops = True``
        (torch.export needs nothing)."""
        plain = self.encoder.plain_item_table() if self.encoder.sparse_input_grad else None
        # the catalog loss's dense gradient of the table must reach the parameter after the history lookup's sparse
        # one, to be added to in place (autograd adds a sparse gradient that comes second out of place): a node
        # made before the encoder runs its backward after the encoder's
        late_table = _GradientLast.apply(plain) if plain is not None and torch.is_grad_enabled() else None
        states = self.encoder(inputs, users if self.use_users else None)
        keep = targets != PAD_ID
        kept = states[keep]
        # a check on the data-dependent size that holds in a graph too (and lets the op's own size check trace)
        torch._check_value(kept.shape[0] > 0, lambda: "targets: every target is PAD_ID (no loss to average)")
        ids_kept = self.encoder.draw_id_mask()  # item-id dropout: a dropped item loses its bias with its id vector
        return self.head.loss(
            kept,
            targets[keep],
            late_table if late_table is not None else self.encoder.item_embeddings(ids_kept),
            unknown=None if ids_kept is None else ~ids_kept,
            label_smoothing=label_smoothing,
        )

    @property
    def window_length(self) -> int:
        """The most recent items a state reads (longer histories are cut to these)."""
        return self.encoder.max_len

    def scoring_table(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(E (N, D), b (N,) or None): what `user_states` are scored against; the score of item a for a state q
        is ``(<q, E[a]> + b[a]) / head.temperature``."""
        return self.encoder.item_embeddings(), self.head.bias

    @torch.no_grad()
    def user_states(self, histories: torch.Tensor, users: torch.Tensor | None = None) -> torch.Tensor:
        """(B, D) states after each history (B, L) (PAD_ID anywhere), for scoring."""
        return self.encoder.last_state(histories, users if self.use_users else None)
