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


def check_csr_offsets(path: str, name: str, offsets: torch.Tensor, bags: int, values: int) -> None:
    """Tensor `name` of the file at `path` must be the (bags + 1,) int64 offsets of a CSR layout over `values`
    values: from 0 to `values`, never falling, so every value belongs to exactly one bag; CheckpointError naming
    the file and the tensor otherwise."""
    if offsets.dtype != torch.int64 or tuple(offsets.shape) != (bags + 1,):
        raise CheckpointError(
            f"{path}: tensor {name!r} must be ({bags + 1},) int64, got {offsets.dtype} {tuple(offsets.shape)}"
        )
    falls = bool((offsets[1:] < offsets[:-1]).any())
    if int(offsets[0]) != 0 or int(offsets[-1]) != values or falls:
        raise CheckpointError(
            f"{path}: tensor {name!r} must rise (never fall) from 0 to {values}, the number of ids; it runs "
            f"{int(offsets[0])}..{int(offsets[-1])}" + (" and falls" if falls else "")
        )


def _ids_in(path: str, name: str, ids: torch.Tensor, rows: int, table: str) -> None:
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= rows):
        raise CheckpointError(
            f"{path}: tensor {name!r} holds ids outside table {table!r} (rows 0..{rows - 1}): "
            f"{int(ids.min())}..{int(ids.max())}"
        )


def check_side_inputs(
    path: str, state: dict[str, torch.Tensor], encoder: SequenceEncoder, prefix: str = "encoder."
) -> None:
    """The side inputs in `state` (the state dict of `encoder`, which may be built on the meta device; tensor
    names are reported with `prefix`) checked against the tables they index: the item features' offsets a CSR
    layout over their ids (one bag per table per item), every id inside its table, every user feature id
    inside its table, the item text's offsets, ids inside the vocabulary and finite weights. A tampered file is
    refused here, at load, not by the first lookup; CheckpointError naming the file and the tensor."""
    num_items = encoder.num_items
    item_tables = [(t.name, t.num_rows) for t in encoder.item_tables.specs] if encoder.item_tables else []
    user_tables = [(t.name, t.num_rows) for t in encoder.user_tables.specs] if encoder.user_tables else []
    ints = {k: v for k, v in state.items() if k.endswith("_ids") or k.endswith("_offsets")}
    for name, t in ints.items():
        if t.dtype != torch.int64:
            raise CheckpointError(f"{path}: tensor {prefix + name!r} must be int64, got {t.dtype}")
    if item_tables:
        ids, offsets = state["item_feature_ids"], state["item_feature_offsets"]
        if ids.dim() != 1:
            raise CheckpointError(f"{path}: tensor {prefix}item_feature_ids must be 1-D, got {tuple(ids.shape)}")
        check_csr_offsets(path, prefix + "item_feature_offsets", offsets, len(item_tables) * num_items, ids.numel())
        for t, (table, rows) in enumerate(item_tables):
            lo, hi = int(offsets[t * num_items]), int(offsets[(t + 1) * num_items])
            _ids_in(path, prefix + "item_feature_ids", ids[lo:hi], rows, table)
    if user_tables:
        ids = state["user_feature_ids"]
        for t, (table, rows) in enumerate(user_tables):
            _ids_in(path, prefix + "user_feature_ids", ids[:, t], rows, table)
    if "item_text_ids" in state:
        ids, weights = state["item_text_ids"], state["item_text_weights"]
        check_csr_offsets(path, prefix + "item_text_offsets", state["item_text_offsets"], num_items, ids.numel())
        _ids_in(path, prefix + "item_text_ids", ids, int(state["text_tables.weights"].shape[0]), "text")
        if not bool(torch.isfinite(weights).all()):
            raise CheckpointError(f"{path}: tensor {prefix}item_text_weights holds values that are not finite")


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
    skeleton = _recommender(path, meta, cfg, tensors, "meta")
    check_tensors_match(path, tensors, skeleton.state_dict())
    encoder_state = {k[len("encoder.") :]: v for k, v in tensors.items() if k.startswith("encoder.")}
    check_side_inputs(path, encoder_state, skeleton.encoder)
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
        check_side_inputs(path, enc_state, encoder)
        encoder, head = build("cpu")
        encoder.load_state_dict(enc_state)
        head.load_state_dict(head_state)
    except (KeyError, RuntimeError, TypeError, ValueError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"{path}: the weights do not match the scorer the metadata describes ({exc})") from exc
    return encoder, head
