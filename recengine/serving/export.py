"""torch.export of a Recommender's encoder, custom ops included (their fake implementations trace).

    program = export_encoder(rec.encoder)               # a torch.export.ExportedProgram
    torch.export.save(program, "encoder.pt2")           # ... later, elsewhere:
    encoder = torch.export.load("encoder.pt2").module()
    states = encoder(window, lengths)                   # (B, D), window (B, L) int64 left-aligned, PAD_ID after
    scores, items = recengine.ops.quantized_catalog_topk(states, rows, scale_bias, k, bias=..., exclude_...)

The batch (1..MAX_BATCH) and window length (1..max_len) are dynamic. The program takes the windows the
Recommender builds (`recengine.serving.histories.context_windows`); the catalog top-k stays a separate call
(its k and exclusion lists vary per request).
"""

from __future__ import annotations

import torch
from torch import Tensor

from recengine.serving.encoder import InferenceEncoder
from recengine.serving.histories import MAX_BATCH


class _PureLookupEncoder(torch.nn.Module):
    """An InferenceEncoder with its table read by tensor ops only (what an ahead-of-time compiler compiles)."""

    def __init__(self, encoder: InferenceEncoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, window: Tensor, lengths: Tensor) -> Tensor:
        return self.encoder(window, lengths, pure_lookup=True)


def export_encoder(encoder: InferenceEncoder, *, pure_lookup: bool = False) -> torch.export.ExportedProgram:
    """`encoder` (a Recommender's `.encoder`: its item table in the Recommender's dtype) as an ExportedProgram
    taking (window (B, L) int64, lengths (B,) int64), with a dynamic batch and window length; `pure_lookup=True`
    reads its table with tensor ops instead of the lookup op (recengine.serving.compiled_encoder compiles that
    program)."""
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    length = torch.export.Dim("length", min=1, max=encoder.max_len)
    device = encoder.position_embedding.device
    window = torch.zeros(2, min(2, encoder.max_len), dtype=torch.int64, device=device)
    lengths = torch.ones(2, dtype=torch.int64, device=device)
    module = _PureLookupEncoder(encoder) if pure_lookup else encoder
    with torch.no_grad():
        return torch.export.export(module, (window, lengths), dynamic_shapes=({0: batch, 1: length}, {0: batch}))
