"""torch.export of a Recommender's encoder, custom ops included (their fake implementations trace).

    program = export_encoder(rec)                       # a torch.export.ExportedProgram
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

from recengine.serving.histories import MAX_BATCH
from recengine.serving.recommender import Recommender


def export_encoder(rec: Recommender) -> torch.export.ExportedProgram:
    """The Recommender's InferenceEncoder (its item table in the Recommender's dtype) as an ExportedProgram
    taking (window (B, L) int64, lengths (B,) int64)."""
    enc = rec.encoder
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    length = torch.export.Dim("length", min=1, max=enc.max_len)
    window = torch.zeros(2, min(2, enc.max_len), dtype=torch.int64, device=rec.device)
    lengths = torch.ones(2, dtype=torch.int64, device=rec.device)
    with torch.no_grad():
        return torch.export.export(enc, (window, lengths), dynamic_shapes=({0: batch, 1: length}, {0: batch}))
