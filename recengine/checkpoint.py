"""Every checkpoint recengine writes: one safetensors file, JSON metadata, a format version, written atomically.

A file holds named tensors and string metadata; the metadata always carries ``format_version`` (files written
before the version existed read as version 0, the same layout) and ``kind`` ("model": the large model's
weights; "training": a resumable training state; "scorer": an agent's encoder and head; "agent": a whole agent,
recengine.agents.persistence). Writes go to a temporary file that is renamed, so a crash
never leaves half a file. Every error names the file.

    save_model("runs/sasrec/model.safetensors", model, cfg, data_name="ml-100k")
    model, cfg = load_model("runs/sasrec/model.safetensors")
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from recengine._atomic import atomic_path, remove_orphans
from recengine.nn.catalog_head import CatalogHead
from recengine.nn.sequence_encoder import SequenceEncoder
from recengine.nn.sequence_recommender import SequenceRecommender
from recengine.train.config import SASRecConfig

FORMAT_VERSION = 1
"""the layout this module writes; it reads this one and every earlier one"""


KINDS = ("model", "training", "scorer", "agent")
"""what a checkpoint file holds: the large model's weights, a resumable training state, an agent's scorer
(recengine.serving.agent_checkpoint) or a whole agent that can act and continue training
(recengine.agents.persistence)"""


AGENT_KIND = "agent"
"""the kind of a whole agent's file (recengine.agents.persistence)"""


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, of an unknown version or lacks what its kind needs."""


def write(path: str, tensors: dict[str, torch.Tensor], kind: str, metadata: dict[str, str]) -> None:
    """Write `tensors` (moved to the CPU, made contiguous) and `metadata` to `path` atomically, tagged with
    `kind` and the current format version."""
    meta = {**metadata, "format_version": str(FORMAT_VERSION), "kind": kind}
    with atomic_path(os.fspath(path)) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp, metadata=meta)


def read(path: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a checkpoint file; raises CheckpointError naming the file when it is missing, a
    directory, not a safetensors file (truncated, foreign), of an unknown kind or written by a newer format
    version. Orphans of interrupted saves of `path` are removed first."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise CheckpointError(f"{path}: is a directory, not a checkpoint file")
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    remove_orphans(path)
    try:
        with safe_open(path, framework="pt") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own error types for a truncated or foreign file
        raise CheckpointError(f"{path}: not a readable safetensors checkpoint ({type(exc).__name__}: {exc})") from exc
    version = meta.get("format_version", "0")
    if not version.isdigit() or int(version) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version!r}; this recengine reads versions "
            f"0..{FORMAT_VERSION} (upgrade recengine to read it)"
        )
    if meta.get("kind", "model") not in KINDS:
        raise CheckpointError(f"{path}: metadata field 'kind' is {meta['kind']!r}, expected one of {KINDS}")
    return tensors, meta


def require_metadata(path: str, meta: dict[str, str], keys: tuple[str, ...]) -> None:
    """CheckpointError naming the file unless metadata `meta` has every field in `keys`."""
    missing = [k for k in keys if k not in meta]
    if missing:
        raise CheckpointError(f"{path}: not a recengine model checkpoint (metadata lacks {', '.join(missing)})")


def json_field(path: str, meta: dict[str, str], key: str, kind: type) -> object:
    """Metadata field `key` parsed as JSON and of type `kind`; CheckpointError naming the file and field."""
    try:
        value = json.loads(meta[key])
    except (json.JSONDecodeError, TypeError) as exc:
        raise CheckpointError(f"{path}: metadata field {key!r} is not valid JSON ({exc})") from None
    if not isinstance(value, kind):
        raise CheckpointError(
            f"{path}: metadata field {key!r} must be a JSON {kind.__name__}, got {type(value).__name__}"
        )
    return value


def _config(path: str, meta: dict[str, str]) -> SASRecConfig:
    try:
        return SASRecConfig.from_dict(json_field(path, meta, "config", dict))
    except (TypeError, ValueError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"{path}: metadata field 'config': {exc}") from None


def _tables(path: str, spec: dict, key: str) -> list[tuple[str, int]]:
    tables = spec.get(key, [])
    if not isinstance(tables, list) or not all(
        isinstance(t, list)
        and len(t) == 2
        and isinstance(t[0], str)
        and isinstance(t[1], int)
        and not isinstance(t[1], bool)
        and t[1] >= 1
        for t in tables
    ):
        raise CheckpointError(
            f"{path}: metadata field 'model': {key!r} must be a list of [name, rows >= 1], got {tables!r}"
        )
    return [(name, rows) for name, rows in tables]


def check_tensors_match(
    path: str, tensors: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], what: str = "weights"
) -> None:
    """CheckpointError naming the file unless `tensors` has exactly the names, shapes and dtypes of `expected`
    (a state dict, possibly on the meta device)."""
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = [
        f"{k} {tuple(tensors[k].shape)} {tensors[k].dtype} (expected {tuple(v.shape)} {v.dtype})"
        for k, v in expected.items()
        if k in tensors and (tensors[k].shape != v.shape or tensors[k].dtype != v.dtype)
    ]
    if missing or unexpected or wrong:
        parts = [
            f"missing {missing}" if missing else "",
            f"unexpected {unexpected}" if unexpected else "",
            f"wrong shape or dtype: {'; '.join(wrong)}" if wrong else "",
        ]
        raise CheckpointError(
            f"{path}: the {what} do not match the model the metadata describes ("
            + ", ".join(p for p in parts if p)
            + ")"
        )


# --------------------------------------------------------------------------------------- the large model
def model_metadata(model: SequenceRecommender, cfg: SASRecConfig, data_name: str) -> dict[str, str]:
    """What is needed besides the weights to rebuild `model`: its config and its side-feature table sizes."""
    enc = model.encoder
    spec = {
        "num_items": enc.num_items,
        "item_feature_tables": [[s.name, s.num_rows] for s in enc.item_tables.specs] if enc.item_tables else [],
        "user_feature_tables": [[s.name, s.num_rows] for s in enc.user_tables.specs] if enc.user_tables else [],
    }
    return {"config": json.dumps(asdict(cfg)), "model": json.dumps(spec), "dataset": data_name}


def save_model(path: str, model: SequenceRecommender, cfg: SASRecConfig, data_name: str = "") -> None:
    """The model's weights and what is needed to rebuild it (load with `load_model`)."""
    write(path, dict(model.state_dict()), "model", model_metadata(model, cfg, data_name))


def _build_model(
    path: str, meta: dict[str, str], cfg: SASRecConfig, tensors: dict[str, torch.Tensor], device: torch.device | str
) -> SequenceRecommender:
    spec = json_field(path, meta, "model", dict)
    num_items = spec.get("num_items")
    if isinstance(num_items, bool) or not isinstance(num_items, int) or num_items < 1:
        raise CheckpointError(f"{path}: metadata field 'model': 'num_items' must be an int >= 1, got {num_items!r}")
    item_tables, user_tables = _tables(path, spec, "item_feature_tables"), _tables(path, spec, "user_feature_tables")
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
            encoder = SequenceEncoder(
                num_items,
                cfg.dim,
                cfg.max_len,
                num_layers=cfg.num_layers,
                num_heads=cfg.num_heads,
                dropout=cfg.dropout,
                feature_dim=cfg.feature_dim,
                id_dropout=cfg.id_dropout,
                **kw,
            )
            return SequenceRecommender(encoder, CatalogHead(num_items, cfg.dim), bool(user_tables))
    except (TypeError, ValueError, IndexError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: the metadata describes no buildable model ({exc})") from None


def load_model(path: str) -> tuple[SequenceRecommender, SASRecConfig]:
    """Rebuild a SequenceRecommender from a model file or from the best weights of a training checkpoint.

    The file is untrusted: the metadata is parsed and checked, and the tensors' names, shapes and dtypes are
    compared with the model it describes (built on the meta device, allocating nothing) before the real
    model is built; every error is a CheckpointError naming the file."""
    tensors, meta = read(path)
    require_metadata(path, meta, ("config", "model"))
    if any(k.startswith("best.") for k in tensors):  # a training checkpoint: take its best weights
        tensors = {k[len("best.") :]: v for k, v in tensors.items() if k.startswith("best.")}
    cfg = _config(path, meta)
    check_tensors_match(path, tensors, _build_model(path, meta, cfg, tensors, "meta").state_dict())
    model = _build_model(path, meta, cfg, tensors, "cpu")
    try:
        model.load_state_dict(tensors)
    except (KeyError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: the weights do not match the model the metadata describes ({exc})") from exc
    return model, cfg


# ------------------------------------------------------------------------------------ a training state
@dataclass
class TrainingState:
    """What a resumed training run restores: weights, best weights, optimizer and RNG state, progress."""

    config: SASRecConfig
    model: dict[str, torch.Tensor]
    best: dict[str, torch.Tensor]
    optimizer: dict
    rng: torch.Tensor
    trainer: dict


def save_training_state(
    path: str,
    model: SequenceRecommender,
    cfg: SASRecConfig,
    data_name: str,
    *,
    best: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    trainer: dict,
) -> None:
    """One resumable training checkpoint: current and best weights, the optimizer's state, the torch RNG state
    and the trainer's progress (`trainer`, JSON-ready)."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update({f"best.{k}": v for k, v in best.items()})
    opt_tensors, groups = optimizer_tensors(optimizer)
    tensors.update(opt_tensors)
    tensors["rng.torch"] = torch.get_rng_state()
    meta = model_metadata(model, cfg, data_name)
    meta["optim_groups"] = groups
    meta["trainer"] = json.dumps(trainer)
    write(path, tensors, "training", meta)


TRAINER_FIELDS = {
    "epoch": int,
    "history": list,
    "best_epoch": int,
    "best_valid": dict,
    "best_ndcg": (int, float),
    "since_best": int,
    "train_seconds": (int, float),
    "stopped": str,
}
"""what a resumed run reads from the trainer metadata, and the JSON type of each"""


def _trainer(path: str, meta: dict[str, str]) -> dict:
    trainer = json_field(path, meta, "trainer", dict)
    for key, kind in TRAINER_FIELDS.items():
        if key in trainer and (isinstance(trainer[key], bool) or not isinstance(trainer[key], kind)):
            raise CheckpointError(
                f"{path}: metadata field 'trainer': {key!r} has the wrong type ({type(trainer[key]).__name__})"
            )
    return trainer


def load_training_state(path: str) -> TrainingState:
    """The training state `save_training_state` wrote (any format version up to the current one); the
    metadata and tensor names are checked, each error a CheckpointError naming the file and the field."""
    tensors, meta = read(path)
    require_metadata(path, meta, ("config", "optim_groups", "trainer"))
    optimizer = optimizer_state(path, tensors, meta)
    rng = tensors.get("rng.torch")
    if rng is None:
        raise CheckpointError(f"{path}: a training checkpoint without its RNG state (rng.torch)")
    if rng.dtype != torch.uint8 or rng.dim() != 1:
        raise CheckpointError(f"{path}: tensor 'rng.torch' must be 1-D uint8, got {rng.dtype} {tuple(rng.shape)}")
    return TrainingState(
        config=_config(path, meta),
        model={k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")},
        best={k[len("best.") :]: v for k, v in tensors.items() if k.startswith("best.")},
        optimizer=optimizer,
        rng=rng,
        trainer=_trainer(path, meta),
    )


# ----------------------------------------------------------------------------------- optimizer state
def optimizer_tensors(optimizer: torch.optim.Optimizer, prefix: str = "optim") -> tuple[dict[str, torch.Tensor], str]:
    """(tensors, param_groups JSON) of `optimizer`'s state: tensor ``<prefix>.<param index>.<state name>`` per
    state entry (scalars such as Adam's step become 0-d tensors); read back with `optimizer_state`."""
    opt_state = optimizer.state_dict()
    tensors = {
        f"{prefix}.{idx}.{key}": torch.as_tensor(value)
        for idx, state in opt_state["state"].items()
        for key, value in state.items()
    }
    return tensors, json.dumps(opt_state["param_groups"])


def optimizer_state(path: str, tensors: dict[str, torch.Tensor], meta: dict[str, str], prefix: str = "optim") -> dict:
    """The optimizer state dict `optimizer_tensors` wrote (its groups in metadata field ``<prefix>_groups``);
    CheckpointError naming the file and the tensor or field that is malformed."""
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith(prefix + "."):
            parts = name.split(".", 2)
            if len(parts) != 3 or not parts[1].isdigit():
                raise CheckpointError(f"{path}: tensor {name!r} is not of the form {prefix}.<param index>.<state name>")
            state.setdefault(int(parts[1]), {})[parts[2]] = value
    require_metadata(path, meta, (f"{prefix}_groups",))
    groups = json_field(path, meta, f"{prefix}_groups", list)
    if not all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups):
        raise CheckpointError(f"{path}: metadata field '{prefix}_groups' must be a list of parameter groups")
    return {"state": state, "param_groups": groups}


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
        "item_feature_tables": [[s.name, s.num_rows] for s in encoder.item_tables.specs] if encoder.item_tables else [],
        "user_feature_tables": [[s.name, s.num_rows] for s in encoder.user_tables.specs] if encoder.user_tables else [],
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
    enc_state = {k[len("encoder.") :]: v for k, v in tensors.items() if k.startswith("encoder.")}
    head_state = {k[len("head.") :]: v for k, v in tensors.items() if k.startswith("head.")}
    kw = {}
    try:
        if spec["item_feature_tables"]:
            kw.update(
                item_feature_tables=_tables(path, spec, "item_feature_tables"),
                item_feature_ids=enc_state["item_feature_ids"],
                item_feature_offsets=enc_state["item_feature_offsets"],
            )
        if spec["user_feature_tables"]:
            kw.update(
                user_feature_tables=_tables(path, spec, "user_feature_tables"),
                user_feature_ids=enc_state["user_feature_ids"],
            )
        encoder = SequenceEncoder(
            spec["num_items"],
            spec["dim"],
            spec["max_len"],
            num_layers=spec["num_layers"],
            num_heads=spec["num_heads"],
            dropout=spec.get("dropout", 0.0) if dropout is None else dropout,
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
    except (KeyError, RuntimeError, TypeError, ValueError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"{path}: the weights do not match the scorer the metadata describes ({exc})") from exc
    return encoder, head
