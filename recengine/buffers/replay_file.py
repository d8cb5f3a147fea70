"""Opening a saved PrioritizedReplay as an untrusted file: every metadata field and tensor header is checked
(type, range, consistency with each other and with the tensors, memory the capacity would take) before the
replay allocates or writes anything, and every error is one ValueError naming the file."""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterator

import torch
from safetensors import safe_open

from recengine._atomic import remove_orphans

FORMAT_VERSION = 1
"""the replay file layout this module reads"""


_SAFETENSORS_DTYPES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint64: "U64",
    torch.uint32: "U32",
    torch.uint16: "U16",
    torch.uint8: "U8",
    torch.bool: "BOOL",
    torch.complex64: "C64",
}
"""the dtype codes of safetensors headers, for every dtype a replay column may have (one NumPy knows)"""

INT_LIMIT = 2**62
"""the largest count a replay file's metadata may hold (the C++ kernels take int64)"""


class ReplayFileError(ValueError):
    """A replay file is missing, unreadable, foreign, truncated or tampered with."""


def _int(path: str, meta: dict, key: str, minimum: int) -> int:
    value = meta.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= INT_LIMIT:
        raise ReplayFileError(f"{path}: metadata field {key!r} must be an int in {minimum}..{INT_LIMIT}, got {value!r}")
    return value


def _float(path: str, meta: dict, key: str, low: float, high: float = math.inf) -> float:
    value = meta.get(key)
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not (low <= value <= high)
    ):
        raise ReplayFileError(
            f"{path}: metadata field {key!r} must be a finite number in [{low}, {high}], got {value!r}"
        )
    return float(value)


def _dtype(path: str, field: str, name: object) -> torch.dtype:
    dtype = getattr(torch, name, None) if isinstance(name, str) else None
    if not isinstance(dtype, torch.dtype) or dtype not in _SAFETENSORS_DTYPES:
        raise ReplayFileError(
            f"{path}: field {field!r} has dtype {name!r}, not one a replay stores "
            f"({', '.join(str(d).replace('torch.', '') for d in _SAFETENSORS_DTYPES)})"
        )
    return dtype


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 62


def check_metadata(
    path: str, meta: object, tensor_shapes: dict[str, tuple[int, ...]], tensor_dtypes: dict[str, str] | None = None
) -> dict:
    """`meta` (the parsed JSON) if it describes a replay consistent with the file's tensors (their shapes and
    safetensors dtype codes, from the header); else ReplayFileError naming `path` and the field."""
    if not isinstance(meta, dict):
        raise ReplayFileError(f"{path}: the replay metadata is not a JSON object")
    if isinstance(meta.get("version"), bool) or meta.get("version") != FORMAT_VERSION:
        raise ReplayFileError(
            f"{path}: unsupported replay format version {meta.get('version')!r} (this recengine reads {FORMAT_VERSION})"
        )
    capacity = _int(path, meta, "capacity", 1)
    num_envs = _int(path, meta, "num_envs", 1)
    _int(path, meta, "n_step", 1)
    _float(path, meta, "alpha", 0.0)
    _float(path, meta, "gamma", 0.0, 1.0)
    size, position = _int(path, meta, "size", 0), _int(path, meta, "position", 0)
    if (
        capacity % num_envs
        or size > capacity
        or position >= capacity
        or size % num_envs
        or position % num_envs
        or (size < capacity and position != size)
    ):
        raise ReplayFileError(
            f"{path}: inconsistent capacity/num_envs/size/position ({capacity}/{num_envs}/{size}/{position})"
        )
    max_leaf = _float(path, meta, "max_leaf", 1.0)
    if not math.isfinite(capacity * max_leaf):
        raise ReplayFileError(f"{path}: metadata field 'max_leaf' ({max_leaf}) lets the priority sum overflow")
    fields = meta.get("fields")
    if not isinstance(fields, dict) or not fields:
        raise ReplayFileError(f"{path}: metadata field 'fields' must be a non-empty object")
    row_bytes = 4 + 2 * 2 * 8  # the discount column, and the two trees (up to twice the capacity in leaves)
    for name, spec in fields.items():
        if not (
            isinstance(spec, list)
            and len(spec) == 2
            and isinstance(spec[0], list)
            and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in spec[0])
        ):
            raise ReplayFileError(f"{path}: field {name!r} must be [shape list of ints >= 0, dtype name], got {spec!r}")
        shape, dtype = tuple(spec[0]), _dtype(path, name, spec[1])
        row_bytes += math.prod(shape) * dtype.itemsize
        if tensor_shapes.get(f"field.{name}") != (size, *shape):
            raise ReplayFileError(
                f"{path}: tensor 'field.{name}' has shape {tensor_shapes.get(f'field.{name}')}, "
                f"the metadata says {(size, *shape)}"
            )
        code = (tensor_dtypes or {}).get(f"field.{name}")
        if code is not None and code != _SAFETENSORS_DTYPES[dtype]:
            raise ReplayFileError(f"{path}: tensor 'field.{name}' has dtype {code}, the metadata says {spec[1]}")
    next_fields = meta.get("next_fields")
    if not isinstance(next_fields, list) or any(not isinstance(f, str) or f not in fields for f in next_fields):
        raise ReplayFileError(f"{path}: metadata field 'next_fields' must list fields, got {next_fields!r}")
    if tensor_shapes.get("leaf_priorities") != (size,):
        raise ReplayFileError(
            f"{path}: tensor 'leaf_priorities' has shape {tensor_shapes.get('leaf_priorities')}, expected ({size},)"
        )
    unknown = sorted(set(tensor_shapes) - {f"field.{n}" for n in fields} - {"leaf_priorities"})
    if unknown:
        raise ReplayFileError(f"{path}: unexpected tensors {unknown}")
    if capacity * row_bytes > _physical_memory():
        raise ReplayFileError(
            f"{path}: metadata field 'capacity' ({capacity}) needs {capacity * row_bytes} bytes, "
            "more than this machine's memory"
        )
    return meta


@contextlib.contextmanager
def open_replay_file(path: str) -> Iterator[tuple[object, dict]]:
    """(the open safetensors file, its checked replay metadata); orphans of interrupted saves are removed first."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ReplayFileError(f"{path}: no such replay file" + (" (it is a directory)" if os.path.isdir(path) else ""))
    remove_orphans(path)
    try:
        handle = safe_open(path, framework="pt")
    except Exception as exc:  # safetensors has its own error types for a truncated or foreign file
        raise ReplayFileError(f"{path}: not a readable safetensors file ({type(exc).__name__}: {exc})") from exc
    with handle as f:
        raw = (f.metadata() or {}).get("recengine.replay")
        if raw is None:
            raise ReplayFileError(f"{path}: not a recengine PrioritizedReplay file")
        try:
            meta = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ReplayFileError(f"{path}: the replay metadata is not valid JSON ({exc})") from None
        slices = {k: f.get_slice(k) for k in f.keys()}
        meta = check_metadata(
            path,
            meta,
            {k: tuple(v.get_shape()) for k, v in slices.items()},
            {k: v.get_dtype() for k, v in slices.items()},
        )
        leaves = f.get_tensor("leaf_priorities")
        if (
            leaves.dtype != torch.float64
            or not bool(torch.isfinite(leaves).all())
            or not bool((leaves >= 0).all())
            or (leaves.numel() and float(leaves.max()) > meta["max_leaf"])
        ):
            raise ReplayFileError(f"{path}: tensor 'leaf_priorities' must be finite float64 in [0, max_leaf]")
        yield f, meta
