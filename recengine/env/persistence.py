"""Save and reload a fitted sequence-aware simulator, so anyone can audit it or score its user model on their data.

    save_simulator(sim, "runs/compare/simulator.safetensors")
    sim = load_simulator("runs/compare/simulator.safetensors")
    log_probs = sim.response.score_histories(my_histories)            # (B, N) next-item log-probabilities
    metrics = sim.response.evaluate(my_leave_one_out_split, "test")   # HR/NDCG/MRR@10, log-likelihood

One safetensors file: the response model's weights (``encoder.*``, ``item_bias``), the train items (CSR), the
item genres, user features and the population (when the simulator was fitted on a subset of users); its
metadata holds a JSON document with the format name and version, the encoder's architecture, the dynamics, the
session model, the no-click offset and the fit report. Written through ``recengine._atomic`` (never half a file).

The file is untrusted: ``load_simulator`` checks every metadata field (types, finite numbers, ranges, sizes within
``recengine.checkpoint.SIZE_LIMITS`` and within what the file holds) and every tensor (names, dtypes, shapes against
each other and against the metadata, ids inside their tables, offsets that account for every row, values finite)
before it builds anything, and each error is a ``CheckpointError`` naming the file and the field or tensor.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, fields

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from recengine._atomic import atomic_path, remove_orphans
from recengine.checkpoint import (
    SIZE_LIMITS,
    CheckpointError,
    check_claimed_sizes,
    check_tensors_match,
    size_field,
    table_list,
)
from recengine.env.response_model import ResponseModel
from recengine.env.sequential_sim import SeqSimConfig, SequentialUserModel
from recengine.env.sessions import SessionModel
from recengine.nn import SequenceEncoder
from recengine.nn.persistence import check_csr_offsets, check_side_inputs
from recengine.ops._checks import check_number

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

    The file is checked in full before anything is built (the module docstring says what). Raises
    FileNotFoundError (no such file) or CheckpointError (a ValueError) naming the file and, for a tampered file,
    the metadata field or tensor at fault: a directory, not a safetensors file, truncated, not a recengine
    simulator, a format version this code does not read, or metadata and tensors that do not describe one
    simulator. Torch's global random state is left as it was."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise CheckpointError(f"{path}: is a directory, not a simulator file")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such simulator file")
    remove_orphans(path)
    try:
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors has its own error types for a truncated or foreign file
        raise CheckpointError(
            f"{path}: not a readable safetensors file (truncated or corrupt?): {type(exc).__name__}: {exc}"
        ) from exc
    document = _document(path, meta)
    encoder_state = {k[len("encoder.") :]: v for k, v in tensors.items() if k.startswith("encoder.")}
    arch = document.get("architecture")
    if not isinstance(arch, dict):
        raise CheckpointError(f"{path}: metadata field 'architecture' must be a JSON object, got {arch!r}")
    build_encoder = _encoder_builder(path, arch, encoder_state, tensors)
    skeleton = build_encoder("meta")
    check_tensors_match(path, encoder_state, skeleton.state_dict(), "encoder weights")
    check_side_inputs(path, encoder_state, skeleton)
    for name, t in encoder_state.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise CheckpointError(f"{path}: tensor 'encoder.{name}' holds values that are not finite")
    num_items = skeleton.num_items
    arrays = _arrays(path, tensors, num_items)

    beta = _field(path, "beta", lambda: _number("beta", document))
    popularity_weight = _field(path, "popularity_weight", lambda: _number("popularity_weight", document))
    no_click_offset = _field(path, "no_click_offset", lambda: _number("no_click_offset", document))
    config = _field(path, "config", lambda: SeqSimConfig(**_object(document.get("config"), SeqSimConfig)))
    history_limit = SIZE_LIMITS["max_len"]
    if config.history_len > history_limit or config.max_steps > SIZE_LIMITS["rows"]:
        raise CheckpointError(
            f"{path}: metadata field 'config': history_len ({config.history_len}) must be <= {history_limit} "
            f"and max_steps ({config.max_steps}) <= {SIZE_LIMITS['rows']}"
        )
    if config.slate_size > num_items:
        raise CheckpointError(
            f"{path}: metadata field 'config': slate_size {config.slate_size} > num_items {num_items} (a slate "
            "holds distinct items)"
        )
    session_model = _field(
        path, "session_model", lambda: SessionModel(**_object(document.get("session_model"), SessionModel))
    )
    fit_report = _fit_report(path, document.get("fit_report"))

    def build() -> SequentialUserModel:
        with torch.random.fork_rng(devices=[]):
            encoder = build_encoder("cpu")
        encoder.load_state_dict(encoder_state)
        response = ResponseModel(encoder, arrays["item_bias"], beta, popularity_weight)
        return SequentialUserModel(
            response,
            arrays["train_offsets"].numpy(),
            arrays["train_items"].numpy(),
            arrays["item_genres"].numpy(),
            session_model,
            no_click_offset=no_click_offset,
            user_features=arrays["user_features"].numpy(),
            config=config,
            fit_report=fit_report,
            population=arrays["population"].numpy() if "population" in arrays else None,
        )

    return _field(path, "the simulator", build)


def _field(path: str, field: str, make: Callable):
    """`make()`, its TypeError / ValueError / IndexError / RuntimeError (a constructor's own checks) turned into a
    CheckpointError naming the file and `field`: one set of checks, whether the value came from Python or a file."""
    try:
        return make()
    except CheckpointError:
        raise
    except (TypeError, ValueError, IndexError, RuntimeError, KeyError) as exc:
        where = f"metadata field {field!r}" if field != "the simulator" else "the simulator it describes is invalid"
        raise CheckpointError(f"{path}: {where}: {exc}") from None


def _number(key: str, document: dict) -> float:
    """Field `key` of the document: a number (the range is the constructor's, checked when it is built)."""
    return check_number(key, document.get(key))


def _object(value: object, cls: type) -> dict:
    """`value` as the keyword arguments of dataclass `cls`: a JSON object of its fields only."""
    if not isinstance(value, dict):
        raise TypeError(f"must be a JSON object of {cls.__name__} fields, got {type(value).__name__}")
    names = {f.name for f in fields(cls)}
    unknown, missing = sorted(set(value) - names), sorted(names - set(value))
    if unknown or missing:
        raise TypeError(
            f"must hold exactly the fields of {cls.__name__}: "
            + ", ".join(([f"unknown {unknown}"] if unknown else []) + ([f"missing {missing}"] if missing else []))
        )
    return value


def _document(path: str, meta: dict) -> dict:
    """The parsed simulator document of the file's metadata: a JSON object of this format and version."""
    try:
        document = json.loads(meta["recengine"])
    except (KeyError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: not a recengine simulator file (no {SIMULATOR_FORMAT} metadata)") from exc
    if not isinstance(document, dict) or document.get("format") != SIMULATOR_FORMAT:
        raise CheckpointError(f"{path}: not a recengine simulator file (no {SIMULATOR_FORMAT} metadata)")
    version = document.get("version")
    if isinstance(version, bool) or version != SIMULATOR_FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: simulator format version {version!r}, this code reads version {SIMULATOR_FORMAT_VERSION}"
        )
    return document


def _encoder_builder(
    path: str, arch: dict, state: dict[str, torch.Tensor], tensors: dict[str, torch.Tensor]
) -> Callable[[str], SequenceEncoder]:
    """A function building the response model's encoder that metadata field 'architecture' (`arch`) describes on
    a device; the sizes are checked first (ints in range, no larger than the file holds)."""
    for key in ("num_items", "dim", "max_len", "num_layers", "num_heads", "feature_dim"):
        size_field(path, "architecture", key, arch.get(key))
    item_tables = table_list(path, arch, "item_feature_tables", "architecture")
    user_tables = table_list(path, arch, "user_feature_tables", "architecture")
    check_claimed_sizes(path, "architecture", arch, tensors)
    kw: dict = {}
    try:
        if item_tables:
            kw.update(
                item_feature_tables=item_tables,
                item_feature_ids=state["item_feature_ids"],
                item_feature_offsets=state["item_feature_offsets"],
            )
        if user_tables:
            kw.update(user_feature_tables=user_tables, user_feature_ids=state["user_feature_ids"])
    except KeyError as exc:
        raise CheckpointError(
            f"{path}: metadata field 'architecture' names feature tables, the file lacks tensor 'encoder.{exc.args[0]}'"
        ) from None

    def build(device: str) -> SequenceEncoder:
        try:
            with torch.device(device):
                return SequenceEncoder(
                    arch["num_items"],
                    arch["dim"],
                    arch["max_len"],
                    num_layers=arch["num_layers"],
                    num_heads=arch["num_heads"],
                    feature_dim=arch["feature_dim"],
                    **kw,
                )
        except (TypeError, ValueError, RuntimeError) as exc:
            raise CheckpointError(
                f"{path}: metadata field 'architecture' describes no buildable encoder ({exc})"
            ) from None

    return build


_ARRAYS = {
    # name: (dtype, dimensions)
    "item_bias": (torch.float32, 1),
    "train_offsets": (torch.int64, 1),
    "train_items": (torch.int64, 1),
    "item_genres": (torch.float64, 2),
    "user_features": (torch.float32, 2),
    "population": (torch.int64, 1),
}
"""the simulator's own tensors (besides the encoder's): dtype and number of dimensions, as save_simulator writes
them ("population" only for a simulator fitted on a subset of users)"""


def _arrays(path: str, tensors: dict[str, torch.Tensor], num_items: int) -> dict[str, torch.Tensor]:
    """The simulator's own tensors, checked against each other and against the encoder's `num_items`: one bias
    and one genre row per item, CSR offsets that account for every train item, ids inside the catalog and the
    population, one feature row per user, every float finite; CheckpointError naming the file and tensor."""
    unexpected = sorted(k for k in tensors if not k.startswith("encoder.") and k not in _ARRAYS)
    if unexpected:
        raise CheckpointError(f"{path}: unexpected tensors {unexpected}")
    out = {}
    for name, (dtype, dims) in _ARRAYS.items():
        if name not in tensors:
            if name == "population":
                continue
            raise CheckpointError(f"{path}: a simulator file without tensor {name!r}")
        t = tensors[name]
        if t.dtype != dtype or t.dim() != dims:
            raise CheckpointError(
                f"{path}: tensor {name!r} must be {dims}-D {str(dtype).replace('torch.', '')}, "
                f"got {str(t.dtype).replace('torch.', '')} {tuple(t.shape)}"
            )
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise CheckpointError(f"{path}: tensor {name!r} holds values that are not finite")
        out[name] = t
    num_users = out["train_offsets"].shape[0] - 1
    if num_users < 1:
        raise CheckpointError(f"{path}: tensor 'train_offsets' must hold at least 2 offsets (one user)")
    shapes = {
        "item_bias": (num_items,),
        "item_genres": (num_items, max(1, out["item_genres"].shape[1])),
        "user_features": (num_users, max(1, out["user_features"].shape[1])),
    }
    for name, shape in shapes.items():
        if tuple(out[name].shape) != shape:
            raise CheckpointError(
                f"{path}: tensor {name!r} has shape {tuple(out[name].shape)}, expected {shape} "
                f"({num_items} items from metadata field 'architecture', {num_users} users from 'train_offsets')"
            )
    check_csr_offsets(path, "train_offsets", out["train_offsets"], num_users, out["train_items"].numel())
    _ids(path, "train_items", out["train_items"], num_items, "items")
    if bool((out["item_genres"] < 0).any()):
        raise CheckpointError(f"{path}: tensor 'item_genres' holds negative values")
    if "population" in out:
        if out["population"].numel() == 0:
            raise CheckpointError(f"{path}: tensor 'population' is empty (it names the users sessions draw)")
        _ids(path, "population", out["population"], num_users, "users")
    return out


def _ids(path: str, name: str, ids: torch.Tensor, count: int, what: str) -> None:
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= count):
        raise CheckpointError(
            f"{path}: tensor {name!r} holds ids outside the {count} {what} ({int(ids.min())}..{int(ids.max())})"
        )


def _fit_report(path: str, report: object) -> dict:
    """Metadata field 'fit_report': a JSON object; its calibration, when present, an object whose click rate is a
    number in (0, 1) (a recalibration starts from it)."""
    if not isinstance(report, dict):
        raise CheckpointError(f"{path}: metadata field 'fit_report' must be a JSON object, got {type(report).__name__}")
    calibration = report.get("calibration", {})
    ctr = calibration.get("top_slate_ctr", 0.5) if isinstance(calibration, dict) else None
    if (
        not isinstance(calibration, dict)
        or isinstance(ctr, bool)
        or not isinstance(ctr, (int, float))
        or not (math.isfinite(ctr) and 0.0 < ctr < 1.0)
    ):
        raise CheckpointError(
            f"{path}: metadata field 'fit_report': 'calibration' must be an object whose 'top_slate_ctr' is a "
            f"number in (0, 1), got {calibration!r}"
        )
    return report
