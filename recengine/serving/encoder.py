"""InferenceEncoder: the large model's encoder for serving, reading its items from an InferenceTable.

Training recomputes the item table (id embedding + projected side features) on every call, because it
carries gradients; serving computes it once, stores it as an InferenceTable (float32, bfloat16 or int8) and
keeps only what a forward needs: the table, the position embeddings, the Transformer and its norms. The math
is SequenceEncoder's in eval mode: item vector + position embedding (+ the user's feature vector), LayerNorm,
the causal Transformer, LayerNorm, read at each row's most recent item; a row without items gets the learned
empty state. Only that one state per row is read, so the last Transformer layer runs for that slot alone.
Every step is a tensor op (no Python loop over rows), so the module traces under torch.export.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from recengine.nn.sequence_encoder import SequenceEncoder
from recengine.serving.item_table import InferenceTable


class InferenceEncoder(nn.Module):
    """forward(window (B, L) int64, lengths (B,) int64, user_vectors (B, D) or None) -> states (B, D).

    `window` holds each row's most recent items left-aligned (oldest first, PAD_ID after the last), L <= the
    model's max_len; `lengths` counts the real items of each row (0 = empty history). `ids_checked`: the
    caller guarantees every id of a window lies in the catalog (or is PAD_ID), so the lookup skips its checks.
    """

    def __init__(self, encoder: SequenceEncoder, table: InferenceTable, *, ids_checked: bool = False):
        super().__init__()
        self.table = table
        self.max_len, self.dim = encoder.max_len, encoder.dim
        self.register_buffer("position_embedding", encoder.position_embedding.detach().clone())
        self.register_buffer("empty_state", encoder.empty_state.detach().clone())
        self.input_norm, self.output_norm = encoder.input_norm, encoder.output_norm
        self.transformer = encoder.transformer
        #: the caller validates the window's ids (the Recommender does): skip the lookup op's own checks
        self.ids_checked = ids_checked
        self.eval()

    def forward(self, window: Tensor, lengths: Tensor, user_vectors: Tensor | None = None) -> Tensor:
        b, length = window.shape
        valid = window >= 0
        x = self.table.lookup(window.clamp(min=0).reshape(-1), checked=self.ids_checked).view(b, length, self.dim)
        x = x * valid.unsqueeze(-1)
        x = x + self.position_embedding[:length]
        if user_vectors is not None:
            x = x + user_vectors.unsqueeze(1)
        x = self.input_norm(x)
        rows = torch.arange(b, device=window.device)
        last = (lengths - 1).clamp(min=0)
        layers = self.transformer.layers
        if len(layers) > 1:
            # built per call from the window's length (slicing a stored max_len mask would pin L under export)
            mask = nn.Transformer.generate_square_subsequent_mask(length, device=window.device)
            for layer in layers[:-1]:
                x = layer(x, src_mask=mask, is_causal=True)
        out = self._last_position(layers[-1], x, rows, last)
        if self.transformer.norm is not None:
            out = self.transformer.norm(out)
        out = self.output_norm(out)
        empty = self.empty_state.expand(b, self.dim)
        if user_vectors is not None:
            empty = empty + user_vectors
        return torch.where((lengths > 0).unsqueeze(1), out, empty)

    @staticmethod
    def _last_position(layer: nn.TransformerEncoderLayer, x: Tensor, rows: Tensor, last: Tensor) -> Tensor:
        """The (pre-norm) layer's output at each row's last real slot only: serving reads no other state, so
        the last layer's query, attention row and feed-forward run for one slot per row instead of L. With the
        items left-aligned, the causal mask of that slot is "every slot up to it"."""
        h = layer.norm1(x)
        length = x.shape[1]
        after = torch.arange(length, device=x.device).unsqueeze(0) > last.unsqueeze(1)
        query = h[rows, last].unsqueeze(1)
        attended = layer.self_attn(query, h, h, key_padding_mask=after, need_weights=False)[0]
        y = x[rows, last].unsqueeze(1) + layer.dropout1(attended)
        y = y + layer._ff_block(layer.norm2(y))
        return y.squeeze(1)
