"""Save and reload a fitted sequence-aware simulator, so anyone can audit it or score its user model on their data.

    save_simulator(sim, "runs/compare/simulator.safetensors")
    sim = load_simulator("runs/compare/simulator.safetensors")
    log_probs = sim.response.score_histories(my_histories)            # (B, N) next-item log-probabilities
    metrics = sim.response.evaluate(my_leave_one_out_split, "test")   # HR/NDCG/MRR@10, log-likelihood

One safetensors file: the response model's weights (``encoder.*``, ``item_bias``), the train items (CSR), the
item genres, user features and the population (when the simulator was fitted on a subset of users); its
metadata holds a JSON document with the format name and version, the encoder's architecture, the dynamics, the
session model, the no-click offset and the fit report. Written through ``recengine._atomic`` (never half a file).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from recengine._atomic import atomic_path
from recengine.env.response_model import ResponseModel
from recengine.env.sequential_sim import SeqSimConfig, SequentialUserModel
from recengine.env.sessions import SessionModel
from recengine.nn import SequenceEncoder

__all__ = ["save_simulator", "load_simulator", "SIMULATOR_FORMAT", "SIMULATOR_FORMAT_VERSION"]

SIMULATOR_FORMAT = "recengine.sequential_simulator"
SIMULATOR_FORMAT_VERSION = 1


def _architecture(encoder: SequenceEncoder) -> dict:
    layer = encoder.transformer.layers[0]
    item_specs = [[s.name, s.num_rows] for s in encoder.item_tables.specs] if encoder.item_tables else []
    user_specs = [[s.name, s.num_rows] for s in encoder.user_tables.specs] if encoder.user_tables else []
    feature_dim = encoder.item_tables.specs[0].dim if encoder.item_tables else 16
    return {
        "num_items": encoder.num_items,
        "dim": encoder.dim,
        "max_len": encoder.max_len,
        "num_layers": len(encoder.transformer.layers),
        "num_heads": layer.self_attn.num_heads,
        "feature_dim": int(feature_dim),
        "item_feature_tables": item_specs,
        "user_feature_tables": user_specs,
    }


def save_simulator(sim: SequentialUserModel, path: str) -> None:
    """Write ``sim`` to ``path`` (safetensors + JSON metadata; atomic). Reload with ``load_simulator``."""
    r = sim.response
    tensors = {f"encoder.{k}": v.detach().contiguous().cpu() for k, v in r.encoder.state_dict().items()}
    tensors.update(
        {
            "item_bias": r.item_bias.detach().contiguous(),
            "train_offsets": torch.from_numpy(sim.train_offsets.copy()),
            "train_items": torch.from_numpy(sim.train_items.copy()),
            "item_genres": torch.from_numpy(sim.item_genres.copy()),
            "user_features": torch.from_numpy(sim.user_features.copy()),
        }
    )
    if sim.population is not None:
        tensors["population"] = torch.from_numpy(sim.population.copy())
    document = {
        "format": SIMULATOR_FORMAT,
        "version": SIMULATOR_FORMAT_VERSION,
        "architecture": _architecture(r.encoder),
        "beta": r.beta,
        "popularity_weight": r.popularity_weight,
        "no_click_offset": sim.no_click_offset,
        "config": asdict(sim.config),
        "session_model": sim.session_model.to_dict(),
        "fit_report": sim.fit_report,
    }
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata={"recengine": json.dumps(document, default=float)})


def load_simulator(path: str) -> SequentialUserModel:
    """Rebuild the simulator saved by ``save_simulator`` at ``path``.

    Raises FileNotFoundError (no such file) or ValueError naming the file (not a safetensors file, truncated, not a
    recengine simulator, or a format version this code does not read)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such simulator file")
    try:
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable safetensors file (truncated or corrupt?): {exc}") from exc
    try:
        document = json.loads(meta["recengine"])
        if document.get("format") != SIMULATOR_FORMAT:
            raise KeyError("format")
    except (KeyError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a recengine simulator file (no {SIMULATOR_FORMAT} metadata)") from exc
    if document.get("version") != SIMULATOR_FORMAT_VERSION:
        raise ValueError(
            f"{path}: simulator format version {document.get('version')}, this code reads "
            f"version {SIMULATOR_FORMAT_VERSION}"
        )
    arch = document["architecture"]
    state = {k[len("encoder.") :]: v for k, v in tensors.items() if k.startswith("encoder.")}
    kw = {}
    if arch["item_feature_tables"]:
        kw.update(
            item_feature_tables=[tuple(t) for t in arch["item_feature_tables"]],
            item_feature_ids=state["item_feature_ids"],
            item_feature_offsets=state["item_feature_offsets"],
        )
    if arch["user_feature_tables"]:
        kw.update(
            user_feature_tables=[tuple(t) for t in arch["user_feature_tables"]],
            user_feature_ids=state["user_feature_ids"],
        )
    encoder = SequenceEncoder(
        arch["num_items"],
        arch["dim"],
        arch["max_len"],
        num_layers=arch["num_layers"],
        num_heads=arch["num_heads"],
        feature_dim=arch["feature_dim"],
        **kw,
    )
    encoder.load_state_dict(state)
    response = ResponseModel(encoder, tensors["item_bias"], document["beta"], document["popularity_weight"])
    return SequentialUserModel(
        response,
        tensors["train_offsets"].numpy(),
        tensors["train_items"].numpy(),
        tensors["item_genres"].numpy(),
        SessionModel(**document["session_model"]),
        no_click_offset=document["no_click_offset"],
        user_features=tensors["user_features"].numpy(),
        config=SeqSimConfig(**document["config"]),
        fit_report=document["fit_report"],
        population=tensors["population"].numpy() if "population" in tensors else None,
    )
