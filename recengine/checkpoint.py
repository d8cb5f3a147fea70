"""Every checkpoint recengine writes: one safetensors file, JSON metadata, a format version, written atomically.

A file holds named tensors and string metadata; the metadata always carries ``format_version`` (files written
before the version existed read as version 0, the same layout) and ``kind`` ("model": the large model's
weights; "training": a resumable training state). Writes go to a temporary file that is renamed, so a crash
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

from recengine._atomic import atomic_path
from recengine.nn.catalog_head import CatalogHead
from recengine.nn.sequence_encoder import SequenceEncoder
from recengine.nn.sequence_recommender import SequenceRecommender
from recengine.train.config import SASRecConfig

FORMAT_VERSION = 1
"""the layout this module writes; it reads this one and every earlier one"""


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, of an unknown version or lacks what its kind needs."""


def write(path: str, tensors: dict[str, torch.Tensor], kind: str, metadata: dict[str, str]) -> None:
    """Write `tensors` (moved to the CPU, made contiguous) and `metadata` to `path` atomically, tagged with
    `kind` and the current format version."""
    meta = {**metadata, "format_version": str(FORMAT_VERSION), "kind": kind}
    with atomic_path(os.fspath(path)) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp, metadata=meta)


def read(path: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a checkpoint file; raises CheckpointError naming the file when it is missing,
    not a safetensors file, or written by a newer format version."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with safe_open(path, framework="pt") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own error types for a truncated or foreign file
        raise CheckpointError(f"{path}: not a readable safetensors checkpoint ({type(exc).__name__}: {exc})") from exc
    version = meta.get("format_version", "0")
    if not version.isdigit() or int(version) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {version!r}; this recengine reads versions "
                              f"0..{FORMAT_VERSION} (upgrade recengine to read it)")
    return tensors, meta


def _require(path: str, meta: dict[str, str], keys: tuple[str, ...]) -> None:
    missing = [k for k in keys if k not in meta]
    if missing:
        raise CheckpointError(f"{path}: not a recengine model checkpoint (metadata lacks {', '.join(missing)})")


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


def load_model(path: str) -> tuple[SequenceRecommender, SASRecConfig]:
    """Rebuild a SequenceRecommender from a model file or from the best weights of a training checkpoint."""
    tensors, meta = read(path)
    _require(path, meta, ("config", "model"))
    if any(k.startswith("best.") for k in tensors):  # a training checkpoint: take its best weights
        tensors = {k[len("best."):]: v for k, v in tensors.items() if k.startswith("best.")}
    cfg = SASRecConfig.from_dict(json.loads(meta["config"]))
    spec = json.loads(meta["model"])
    kw = {}
    try:
        if spec["item_feature_tables"]:
            kw.update(item_feature_tables=[tuple(t) for t in spec["item_feature_tables"]],
                      item_feature_ids=tensors["encoder.item_feature_ids"],
                      item_feature_offsets=tensors["encoder.item_feature_offsets"])
        if spec["user_feature_tables"]:
            kw.update(user_feature_tables=[tuple(t) for t in spec["user_feature_tables"]],
                      user_feature_ids=tensors["encoder.user_feature_ids"])
        encoder = SequenceEncoder(spec["num_items"], cfg.dim, cfg.max_len, num_layers=cfg.num_layers,
                                  num_heads=cfg.num_heads, dropout=cfg.dropout, feature_dim=cfg.feature_dim, **kw)
        model = SequenceRecommender(encoder, CatalogHead(spec["num_items"], cfg.dim),
                                    bool(spec["user_feature_tables"]))
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


def save_training_state(path: str, model: SequenceRecommender, cfg: SASRecConfig, data_name: str, *,
                        best: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer, trainer: dict) -> None:
    """One resumable training checkpoint: current and best weights, the optimizer's state, the torch RNG state
    and the trainer's progress (`trainer`, JSON-ready)."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update({f"best.{k}": v for k, v in best.items()})
    opt_state = optimizer.state_dict()
    for idx, state in opt_state["state"].items():
        for key, value in state.items():
            tensors[f"optim.{idx}.{key}"] = torch.as_tensor(value)
    tensors["rng.torch"] = torch.get_rng_state()
    meta = model_metadata(model, cfg, data_name)
    meta["optim_groups"] = json.dumps(opt_state["param_groups"])
    meta["trainer"] = json.dumps(trainer)
    write(path, tensors, "training", meta)


def load_training_state(path: str) -> TrainingState:
    """The training state `save_training_state` wrote (any format version up to the current one)."""
    tensors, meta = read(path)
    _require(path, meta, ("config", "optim_groups", "trainer"))
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = value
    if "rng.torch" not in tensors:
        raise CheckpointError(f"{path}: a training checkpoint without its RNG state (rng.torch)")
    return TrainingState(
        config=SASRecConfig.from_dict(json.loads(meta["config"])),
        model={k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")},
        best={k[len("best."):]: v for k, v in tensors.items() if k.startswith("best.")},
        optimizer={"state": state, "param_groups": json.loads(meta["optim_groups"])},
        rng=tensors["rng.torch"],
        trainer=json.loads(meta["trainer"]),
    )
