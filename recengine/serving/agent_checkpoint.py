"""Checkpoints of an agent's scorer (an encoder and its catalog head), so hybrids and RL agents can be served.

The large model has its checkpoint (`recengine.checkpoint.save_model`); an agent's `Scorer`
(recengine.agents.scorer: a SequenceEncoder and a CatalogHead, tied or with its own item table) is saved here on
the same file format (`recengine.checkpoint.write` / `read`: safetensors, JSON metadata, format version,
atomic), kind "scorer":

    save_scorer("runs/compare/hybrid_reinforce.safetensors", agent.scorer, agent_name="hybrid_reinforce")
    encoder, head, meta = load_scorer("runs/compare/hybrid_reinforce.safetensors")
    rec = Recommender.load("runs/compare/hybrid_reinforce.safetensors", dtype="int8")   # the same file

Dropout is off in a loaded scorer (it is for inference).
"""

from __future__ import annotations

import json

from torch import nn

from recengine.checkpoint import CheckpointError, read, write
from recengine.nn.catalog_head import CatalogHead
from recengine.nn.sequence_encoder import SequenceEncoder

#: the checkpoint kind this module writes
SCORER_KIND = "scorer"


def scorer_metadata(encoder: SequenceEncoder, head: CatalogHead, agent_name: str, data_name: str) -> dict[str, str]:
    """What rebuilds the encoder and head besides their weights."""
    layer = encoder.transformer.layers[0]
    spec = {
        "num_items": encoder.num_items,
        "dim": encoder.dim,
        "max_len": encoder.max_len,
        "num_layers": len(encoder.transformer.layers),
        "num_heads": layer.self_attn.num_heads,
        "feature_dim": encoder.item_tables.dim
        if encoder.item_tables
        else (encoder.user_tables.dim if encoder.user_tables else 16),
        "item_feature_tables": [[s.name, s.num_rows] for s in encoder.item_tables.specs] if encoder.item_tables else [],
        "user_feature_tables": [[s.name, s.num_rows] for s in encoder.user_tables.specs] if encoder.user_tables else [],
    }
    head_spec = {"own_table": head.weight is not None, "bias": head.bias is not None, "temperature": head.temperature}
    return {"encoder": json.dumps(spec), "head": json.dumps(head_spec), "agent": agent_name, "dataset": data_name}


def save_scorer(path: str, scorer: nn.Module, *, agent_name: str = "", data_name: str = "") -> None:
    """Write `scorer` (any module with `.encoder` a SequenceEncoder and `.head` a CatalogHead) to `path`."""
    encoder, head = getattr(scorer, "encoder", None), getattr(scorer, "head", None)
    if not isinstance(encoder, SequenceEncoder) or not isinstance(head, CatalogHead):
        raise TypeError(
            f"scorer: expected .encoder a SequenceEncoder and .head a CatalogHead, got "
            f"{type(encoder).__name__} and {type(head).__name__}"
        )
    tensors = {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
    tensors.update({f"head.{k}": v for k, v in head.state_dict().items()})
    write(path, tensors, SCORER_KIND, scorer_metadata(encoder, head, agent_name, data_name))


def load_scorer(path: str) -> tuple[SequenceEncoder, CatalogHead, dict[str, str]]:
    """(encoder, head, metadata) of a scorer checkpoint, in eval mode; CheckpointError names the file."""
    tensors, meta = read(path)
    if meta.get("kind") != SCORER_KIND or "encoder" not in meta or "head" not in meta:
        raise CheckpointError(f"{path}: not a scorer checkpoint (kind {meta.get('kind')!r})")
    spec, head_spec = json.loads(meta["encoder"]), json.loads(meta["head"])
    enc_state = {k[len("encoder.") :]: v for k, v in tensors.items() if k.startswith("encoder.")}
    head_state = {k[len("head.") :]: v for k, v in tensors.items() if k.startswith("head.")}
    kw = {}
    try:
        if spec["item_feature_tables"]:
            kw.update(
                item_feature_tables=[tuple(t) for t in spec["item_feature_tables"]],
                item_feature_ids=enc_state["item_feature_ids"],
                item_feature_offsets=enc_state["item_feature_offsets"],
            )
        if spec["user_feature_tables"]:
            kw.update(
                user_feature_tables=[tuple(t) for t in spec["user_feature_tables"]],
                user_feature_ids=enc_state["user_feature_ids"],
            )
        encoder = SequenceEncoder(
            spec["num_items"],
            spec["dim"],
            spec["max_len"],
            num_layers=spec["num_layers"],
            num_heads=spec["num_heads"],
            dropout=0.0,
            feature_dim=spec["feature_dim"],
            **kw,
        )
        head = CatalogHead(
            spec["num_items"],
            spec["dim"],
            bias=head_spec["bias"],
            own_table=head_spec["own_table"],
            temperature=head_spec["temperature"],
        )
        encoder.load_state_dict(enc_state)
        head.load_state_dict(head_state)
    except (KeyError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: the weights do not match the scorer the metadata describes ({exc})") from exc
    return encoder.eval(), head.eval(), meta
