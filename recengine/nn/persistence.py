"""How the nn models are written on the checkpoint format (recengine.checkpoint) and rebuilt from it.

Two shapes of model are saved: the large model (a SequenceRecommender: metadata field "model" holds its catalog
and side-feature table sizes, the sizes themselves come from the trainer's config) and an agent's scorer (a
SequenceEncoder and its CatalogHead: metadata fields "encoder" and "head"). The readers here take what
`recengine.checkpoint.read` returned, so a file is opened once whoever reads it; they treat it as untrusted:
the metadata is parsed and checked and the tensors are compared with the model it describes before any
real weight is allocated, each error a CheckpointError naming the file.

    meta = {"config": ..., "model": json.dumps(model_spec(model))}          # recengine.train.sasrec_checkpoint
    model = build_recommender(path, tensors, meta, cfg)                     # cfg: the encoder sizes
    encoder, head = build_scorer(path, tensors, meta)
"""

from __future__ import annotations

import json

import torch

from recengine.checkpoint import (
    CheckpointError,
    check_claimed_sizes,
    check_tensors_match,
    json_field,
    require_metadata,
    table_list,
)
from recengine.nn.catalog_head import CatalogHead
from recengine.nn.sequence_encoder import SequenceEncoder, encoder_from_config
from recengine.nn.sequence_recommender import SequenceRecommender


def _table_sizes(encoder: SequenceEncoder) -> dict[str, list]:
    """The encoder's side-feature tables as [[name, rows]] lists (metadata fields *_feature_tables)."""
    return {
        "item_feature_tables": [[s.name, s.num_rows] for s in encoder.item_tables.specs] if encoder.item_tables else [],
        "user_feature_tables": [[s.name, s.num_rows] for s in encoder.user_tables.specs] if encoder.user_tables else [],
    }


# --------------------------------------------------------------------------------------- the large model
def model_spec(model: SequenceRecommender) -> dict:
    """What rebuilds `model` besides its weights and its config's sizes (metadata field "model", as JSON): the
    catalog size and the side-feature table sizes."""
    return {"num_items": model.encoder.num_items, **_table_sizes(model.encoder)}


def _recommender(
    path: str, meta: dict[str, str], cfg: object, tensors: dict[str, torch.Tensor], device: torch.device | str
) -> SequenceRecommender:
    spec = json_field(path, meta, "model", dict)
    num_items = spec.get("num_items")
    if isinstance(num_items, bool) or not isinstance(num_items, int) or num_items < 1:
        raise CheckpointError(f"{path}: metadata field 'model': 'num_items' must be an int >= 1, got {num_items!r}")
    item_tables = table_list(path, spec, "item_feature_tables")
    user_tables = table_list(path, spec, "user_feature_tables")
    check_claimed_sizes(path, "model", {**spec, "dim": getattr(cfg, "dim", None)}, tensors)
    kw = {}
    try:
        if item_tables:
            kw.update(
                item_feature_tables=item_tables,
                item_feature_ids=tensors["encoder.item_feature_ids"],
                item_feature_offsets=tensors["encoder.item_feature_offsets"],
            )
        if user_tables:
            kw.update(user_feature_tables=user_tables, user_feature_ids=tensors["encoder.user_feature_ids"])
        if "encoder.item_text_ids" in tensors:  # item text as weighted bags: the vocabulary size is the table's
            kw.update(
                item_text_vocab_size=int(tensors["encoder.text_tables.weights"].shape[0]),
                item_text_ids=tensors["encoder.item_text_ids"],
                item_text_offsets=tensors["encoder.item_text_offsets"],
                item_text_weights=tensors["encoder.item_text_weights"],
            )
        if "encoder.item_text_vectors" in tensors:
            kw.update(item_text_vectors=tensors["encoder.item_text_vectors"])
    except KeyError as exc:
        raise CheckpointError(
            f"{path}: the weights do not match the model the metadata describes (missing tensor {exc.args[0]!r})"
        ) from None
    try:
        with torch.device(device):
            encoder = encoder_from_config(num_items, cfg, **kw)
            return SequenceRecommender(encoder, CatalogHead(num_items, cfg.dim), bool(user_tables))
    except (TypeError, ValueError, IndexError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: the metadata describes no buildable model ({exc})") from None


def build_recommender(
    path: str, tensors: dict[str, torch.Tensor], meta: dict[str, str], cfg: object
) -> SequenceRecommender:
    """The SequenceRecommender that `tensors` (its state dict) and metadata field "model" (`model_spec`) of the
    file at `path` describe, with the encoder sizes of `cfg` (recengine.nn.sequence_encoder.encoder_from_config),
    weights loaded.

    The model is first built on the meta device (allocating nothing) and the tensors' names, shapes and dtypes
    compared with it; every error is a CheckpointError naming the file."""
    check_tensors_match(path, tensors, _recommender(path, meta, cfg, tensors, "meta").state_dict())
    model = _recommender(path, meta, cfg, tensors, "cpu")
    try:
        model.load_state_dict(tensors)
    except (KeyError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: the weights do not match the model the metadata describes ({exc})") from exc
    return model


# ----------------------------------------------------------------------- an agent's scorer (encoder + head)
def scorer_metadata(encoder: SequenceEncoder, head: CatalogHead) -> dict[str, str]:
    """What rebuilds an encoder and its catalog head besides their weights (metadata fields "encoder", "head")."""
    layer = encoder.transformer.layers[0]
    spec = {
        "num_items": encoder.num_items,
        "dim": encoder.dim,
        "max_len": encoder.max_len,
        "num_layers": len(encoder.transformer.layers),
        "num_heads": layer.self_attn.num_heads,
        "dropout": encoder.dropout.p,
        "feature_dim": encoder.item_tables.dim
        if encoder.item_tables
        else (encoder.user_tables.dim if encoder.user_tables else 16),
        **_table_sizes(encoder),
    }
    head_spec = {"own_table": head.weight is not None, "bias": head.bias is not None, "temperature": head.temperature}
    return {"encoder": json.dumps(spec), "head": json.dumps(head_spec)}


def scorer_tensors(encoder: SequenceEncoder, head: CatalogHead) -> dict[str, torch.Tensor]:
    """The encoder's and head's weights, named ``encoder.*`` and ``head.*``."""
    tensors = {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
    tensors.update({f"head.{k}": v for k, v in head.state_dict().items()})
    return tensors


def build_scorer(
    path: str, tensors: dict[str, torch.Tensor], meta: dict[str, str], *, dropout: float | None = None
) -> tuple[SequenceEncoder, CatalogHead]:
    """The encoder and head `scorer_metadata` / `scorer_tensors` wrote, weights loaded (dropout: the saved one,
    or `dropout` when given); CheckpointError naming the file when the metadata or the weights do not fit."""
    require_metadata(path, meta, ("encoder", "head"))
    spec, head_spec = json_field(path, meta, "encoder", dict), json_field(path, meta, "head", dict)
    check_claimed_sizes(path, "encoder", spec, tensors)
    enc_state = {k[len("encoder.") :]: v for k, v in tensors.items() if k.startswith("encoder.")}
    head_state = {k[len("head.") :]: v for k, v in tensors.items() if k.startswith("head.")}
    kw = {}
    try:
        if spec["item_feature_tables"]:
            kw.update(
                item_feature_tables=table_list(path, spec, "item_feature_tables"),
                item_feature_ids=enc_state["item_feature_ids"],
                item_feature_offsets=enc_state["item_feature_offsets"],
            )
        if spec["user_feature_tables"]:
            kw.update(
                user_feature_tables=table_list(path, spec, "user_feature_tables"),
                user_feature_ids=enc_state["user_feature_ids"],
            )
        kw["dropout"] = spec.get("dropout", 0.0) if dropout is None else dropout

        def build(device: str) -> tuple[SequenceEncoder, CatalogHead]:
            with torch.device(device):
                encoder = encoder_from_config(spec["num_items"], spec, **kw)
                head = CatalogHead(
                    spec["num_items"],
                    spec["dim"],
                    bias=head_spec["bias"],
                    own_table=head_spec["own_table"],
                    temperature=head_spec["temperature"],
                )
            return encoder, head

        # first on the meta device (allocating nothing): the tensors must fit what the metadata describes
        encoder, head = build("meta")
        check_tensors_match(path, enc_state, encoder.state_dict(), "encoder weights")
        check_tensors_match(path, head_state, head.state_dict(), "head weights")
        encoder, head = build("cpu")
        encoder.load_state_dict(enc_state)
        head.load_state_dict(head_state)
    except (KeyError, RuntimeError, TypeError, ValueError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"{path}: the weights do not match the scorer the metadata describes ({exc})") from exc
    return encoder, head
