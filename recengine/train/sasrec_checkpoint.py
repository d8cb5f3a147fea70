"""The large model's files: its model file (kind "model") and the trainer's resumable state (kind "training").

Both are recengine.checkpoint files whose metadata carries the SASRecConfig (field "config") and the model's
table sizes (field "model", recengine.nn.persistence.model_spec); a training file adds the best weights, the
optimizer's state, the torch RNG state and the trainer's progress, so `train_sasrec(..., resume=True)` continues
exactly where it stopped.

    save_model("runs/sasrec/model.safetensors", model, cfg, data_name="ml-100k")
    model, cfg = load_model("runs/sasrec/model.safetensors")      # also the best weights of a training file
    state = load_training_state("runs/sasrec/checkpoint.safetensors")
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import torch

from recengine.checkpoint import (
    MODEL_KIND,
    TRAINING_KIND,
    CheckpointError,
    json_field,
    optimizer_state,
    optimizer_tensors,
    read,
    require_metadata,
    size_field,
    write,
)
from recengine.data.vocabulary import METADATA_FIELD as VOCABULARY_FIELD
from recengine.data.vocabulary import ItemVocabulary
from recengine.nn.persistence import build_recommender, model_spec
from recengine.nn.sequence_recommender import SequenceRecommender
from recengine.train.config import SASRecConfig


def config_of(path: str, meta: dict[str, str]) -> SASRecConfig:
    """The SASRecConfig in metadata field "config" of the file at `path`, checked (CheckpointError naming the
    file and the field)."""
    settings = json_field(path, meta, "config", dict)
    for key in ("dim", "max_len", "num_layers", "num_heads", "feature_dim"):
        if key in settings:
            size_field(path, "config", key, settings[key])
    try:
        return SASRecConfig.from_dict(settings)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"{path}: metadata field 'config': {exc}") from None


# --------------------------------------------------------------------------------------- the model file
def model_metadata(model: SequenceRecommender, cfg: SASRecConfig, data_name: str, item_ids=None) -> dict[str, str]:
    """What is needed besides the weights to rebuild `model`: its config and its side-feature table sizes; with
    `item_ids` (the source's raw item ids in index order), the item vocabulary a served model answers in."""
    meta = {"config": json.dumps(asdict(cfg)), "model": json.dumps(model_spec(model)), "dataset": data_name}
    if item_ids is not None:
        vocabulary = ItemVocabulary(item_ids)
        if len(vocabulary) != model.head.num_items:
            raise ValueError(f"item_ids: {len(vocabulary)} raw ids for a catalog of {model.head.num_items} items")
        meta[VOCABULARY_FIELD] = vocabulary.to_json()
    return meta


def save_model(path: str, model: SequenceRecommender, cfg: SASRecConfig, data_name: str = "", *, item_ids=None) -> None:
    """The model's weights and what is needed to rebuild it (load with `load_model`); `item_ids`: the raw item
    ids in index order (``MovieLens.raw_item_ids``), kept as the model's item vocabulary."""
    write(path, dict(model.state_dict()), MODEL_KIND, model_metadata(model, cfg, data_name, item_ids))


def model_from_checkpoint(
    path: str, tensors: dict[str, torch.Tensor], meta: dict[str, str]
) -> tuple[SequenceRecommender, SASRecConfig]:
    """The SequenceRecommender and its config of a model file or, from a training file, of its best weights,
    from what `recengine.checkpoint.read` returned for `path` (checked: recengine.nn.persistence.build_recommender)."""
    require_metadata(path, meta, ("config", "model"))
    if any(k.startswith("best.") for k in tensors):  # a training checkpoint: take its best weights
        tensors = {k[len("best.") :]: v for k, v in tensors.items() if k.startswith("best.")}
    cfg = config_of(path, meta)
    return build_recommender(path, tensors, meta, cfg), cfg


def load_model(path: str) -> tuple[SequenceRecommender, SASRecConfig]:
    """Rebuild a SequenceRecommender from a model file or from the best weights of a training checkpoint.

    The file is untrusted: the metadata is parsed and checked, and the tensors' names, shapes and dtypes are
    compared with the model it describes (built on the meta device, allocating nothing) before the real
    model is built; every error is a CheckpointError naming the file."""
    tensors, meta = read(path)
    return model_from_checkpoint(path, tensors, meta)


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
    item_ids=None,
) -> None:
    """One resumable training checkpoint: current and best weights, the optimizer's state, the torch RNG state
    and the trainer's progress (`trainer`, JSON-ready)."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update({f"best.{k}": v for k, v in best.items()})
    opt_tensors, groups = optimizer_tensors(optimizer)
    tensors.update(opt_tensors)
    tensors["rng.torch"] = torch.get_rng_state()
    meta = model_metadata(model, cfg, data_name, item_ids)
    meta["optim_groups"] = groups
    meta["trainer"] = json.dumps(trainer)
    write(path, tensors, TRAINING_KIND, meta)


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
        config=config_of(path, meta),
        model={k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")},
        best={k[len("best.") :]: v for k, v in tensors.items() if k.startswith("best.")},
        optimizer=optimizer,
        rng=rng,
        trainer=_trainer(path, meta),
    )
