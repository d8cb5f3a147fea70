"""Checkpoints of an agent's scorer (an encoder and its catalog head), so hybrids and RL agents can be served.

The large model has its checkpoint (`recengine.train.sasrec_checkpoint.save_model`); an agent's `Scorer`
(recengine.agents.scorer: a SequenceEncoder and a CatalogHead, tied or with its own item table) is saved here on
the same file format (`recengine.checkpoint.write` / `read`: safetensors, JSON metadata, format version,
atomic), kind "scorer":

    save_scorer("runs/compare/hybrid_reinforce.safetensors", agent.scorer, agent_name="hybrid_reinforce")
    encoder, head, meta = load_scorer("runs/compare/hybrid_reinforce.safetensors")
    rec = Recommender.load("runs/compare/hybrid_reinforce.safetensors", dtype="int8")   # the same file

Dropout is off in a loaded scorer (it is for inference).
"""

from __future__ import annotations

from torch import Tensor, nn

from recengine.checkpoint import AGENT_KIND, SCORER_KIND, CheckpointError, read, write
from recengine.nn.catalog_head import CatalogHead
from recengine.nn.persistence import build_scorer, scorer_metadata, scorer_tensors
from recengine.nn.sequence_encoder import SequenceEncoder


def save_scorer(path: str, scorer: nn.Module, *, agent_name: str = "", data_name: str = "") -> None:
    """Write `scorer` (any module with `.encoder` a SequenceEncoder and `.head` a CatalogHead) to `path`."""
    encoder, head = getattr(scorer, "encoder", None), getattr(scorer, "head", None)
    if not isinstance(encoder, SequenceEncoder) or not isinstance(head, CatalogHead):
        raise TypeError(
            f"scorer: expected .encoder a SequenceEncoder and .head a CatalogHead, got "
            f"{type(encoder).__name__} and {type(head).__name__}"
        )
    meta = {**scorer_metadata(encoder, head), "agent": agent_name, "dataset": data_name}
    write(path, scorer_tensors(encoder, head), SCORER_KIND, meta)


def load_scorer(path: str) -> tuple[SequenceEncoder, CatalogHead, dict[str, str]]:
    """(encoder, head, metadata) of a scorer checkpoint, or of the scorer inside an agent checkpoint
    (recengine.agents.persistence), in eval mode with dropout off; CheckpointError names the file."""
    tensors, meta = read(path)
    encoder, head = scorer_from_checkpoint(path, tensors, meta)
    return encoder, head, meta


def scorer_from_checkpoint(
    path: str, tensors: dict[str, Tensor], meta: dict[str, str]
) -> tuple[SequenceEncoder, CatalogHead]:
    """(encoder, head) of a scorer or agent file from what `recengine.checkpoint.read` returned for `path`, as
    `load_scorer` gives them; CheckpointError naming the file for a file of another kind."""
    if meta.get("kind") not in (SCORER_KIND, AGENT_KIND) or "encoder" not in meta or "head" not in meta:
        raise CheckpointError(f"{path}: not a scorer checkpoint (kind {meta.get('kind')!r})")
    encoder, head = build_scorer(path, tensors, meta, dropout=0.0)
    return encoder.eval(), head.eval()
