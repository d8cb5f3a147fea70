"""The checkpoint file format: one safetensors file, JSON metadata, a format version, written atomically.

A file holds named tensors and string metadata; the metadata always carries ``format_version`` (files written
before the version existed read as version 0, the same layout) and ``kind`` (KINDS). Writes go to a temporary
file that is renamed, so a crash never leaves half a file. The files are untrusted: every reader checks the
version, the kind, each metadata field it parses and the tensors' names, shapes and dtypes, and every error
names the file.

This module knows the format and nothing of what a file holds: each model and trainer writes and rebuilds
itself on it (recengine.nn.persistence: the large model and an agent's scorer; recengine.train.sasrec_checkpoint:
the large model's file and training state; recengine.agents.persistence: a whole agent), and
recengine.serving.loading.load_any tells the kinds apart.

    write(path, {"w": w}, MODEL_KIND, {"config": json.dumps(cfg)})
    tensors, meta = read(path)
"""

from __future__ import annotations

import json
import os

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from recengine._atomic import atomic_path, remove_orphans

FORMAT_VERSION = 1
"""the layout this module writes; it reads this one and every earlier one"""


MODEL_KIND = "model"
"""the large model's weights (recengine.train.sasrec_checkpoint.save_model)"""
TRAINING_KIND = "training"
"""a resumable training state of the large model (recengine.train.sasrec_checkpoint.save_training_state)"""
SCORER_KIND = "scorer"
"""an agent's scorer: its encoder and catalog head (recengine.serving.agent_checkpoint)"""
AGENT_KIND = "agent"
"""a whole agent that can act and continue training (recengine.agents.persistence)"""
KINDS = (MODEL_KIND, TRAINING_KIND, SCORER_KIND, AGENT_KIND)
"""what a checkpoint file holds"""


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
    if kind_of(meta) not in KINDS:
        raise CheckpointError(f"{path}: metadata field 'kind' is {meta['kind']!r}, expected one of {KINDS}")
    return tensors, meta


def kind_of(meta: dict[str, str]) -> str:
    """The kind of a file from its metadata `meta`; a file written before kinds existed holds a model (or a
    training state, whose best weights load as one)."""
    return meta.get("kind", MODEL_KIND)


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


SIZE_LIMITS = {
    "num_items": 2**31 - 1,
    "rows": 2**31 - 1,
    "dim": 2**16,
    "max_len": 2**20,
    "num_layers": 1024,
    "num_heads": 2**16,
    "feature_dim": 2**16,
}
"""the largest value a checkpoint's metadata may claim for each size (a file claiming more is refused before
anything is allocated); "rows" bounds every side-feature table"""


def size_field(path: str, field: str, key: str, value: object, limit_key: str | None = None) -> int:
    """`value`, the size `key` of metadata field `field`, checked to be an int in 1..SIZE_LIMITS[limit_key or
    key]; CheckpointError naming the file, the field and the size otherwise."""
    limit = SIZE_LIMITS[limit_key or key]
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
        raise CheckpointError(f"{path}: metadata field {field!r}: {key!r} must be an int in 1..{limit}, got {value!r}")
    return value


def check_claimed_sizes(path: str, field: str, sizes: dict, tensors: dict[str, torch.Tensor]) -> None:
    """Refuse metadata field `field` (its parsed `sizes`: num_items, max_len, dim, the feature tables) when it
    claims sizes past SIZE_LIMITS or tables larger than the file holds: a model of `num_items` items of width
    `dim` has a num_items x dim item table, so the file's tensors must hold at least that many elements (and
    max_len x dim for the positions). Checked before any model is built, so a forged file never makes the
    reader allocate what it claims; CheckpointError naming the file, the field and the size."""
    for key in ("num_items", "dim", "max_len", "num_layers", "num_heads", "feature_dim"):
        if key in sizes:
            size_field(path, field, key, sizes[key])
    for key in ("item_feature_tables", "user_feature_tables"):
        tables = sizes.get(key) or []
        if isinstance(tables, list):
            for t in tables:
                if isinstance(t, list) and len(t) == 2:
                    size_field(path, field, f"{key}.{t[0]}", t[1], "rows")
    held = sum(t.numel() for t in tensors.values())
    dim = sizes.get("dim")
    if not isinstance(dim, int) or isinstance(dim, bool):
        return
    for key in ("num_items", "max_len"):
        value = sizes.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value * dim > held:
            raise CheckpointError(
                f"{path}: metadata field {field!r}: {key!r} = {value} claims a table of {value} x {dim} values, "
                f"more than the {held} the file holds"
            )


def table_list(path: str, spec: dict, key: str, field: str = "model") -> list[tuple[str, int]]:
    """The embedding tables [(name, rows)] in field `key` of the parsed metadata field `field` (`spec`): a JSON
    list of [name, rows >= 1]; CheckpointError naming the file and the field otherwise."""
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
            f"{path}: metadata field {field!r}: {key!r} must be a list of [name, rows >= 1], got {tables!r}"
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
