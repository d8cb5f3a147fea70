"""The quick check of a checkpoint before a server or a benchmark starts, from the safetensors header alone.

It imports no torch (and nothing that does): `recengine serve` must set the OpenMP wait policy before torch starts,
and a user error must still be one line before any long work. The header is the file's first 8 bytes (its length,
little-endian) and that many bytes of JSON; the metadata is its "__metadata__" object. `load_any` still checks the
whole file when the model is loaded.
"""

from __future__ import annotations

import json
import os
import struct

__all__ = ["CHECKPOINT_FILES", "SERVABLE_KINDS", "PreflightError", "check_servable"]

CHECKPOINT_FILES = ("model.safetensors", "checkpoint.safetensors")
"""file names looked for, in order, in a run directory"""
SHARDED_DENSE = "dense.safetensors"
"""the file that marks a sharded model directory (recengine.distributed.model_checkpoint.DENSE)"""
SERVABLE_KINDS = ("model", "training", "scorer", "agent")
"""the metadata kinds a server can answer with (recengine.checkpoint's kinds; "model" when absent)"""
_MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit on the header


class PreflightError(ValueError):
    """The checkpoint cannot be served; the message names the file and why."""


def checkpoint_file(path: str) -> str:
    """`path` itself, or the first of CHECKPOINT_FILES inside the directory `path`."""
    if os.path.isdir(path):
        for name in CHECKPOINT_FILES:
            if os.path.isfile(os.path.join(path, name)):
                return os.path.join(path, name)
        raise PreflightError(f"{path}: a directory holding none of {', '.join(CHECKPOINT_FILES)}")
    return path


def header_metadata(file: str) -> dict[str, str]:
    """The "__metadata__" of the safetensors file `file` (empty when it has none); PreflightError naming the file
    when it is not a readable safetensors file."""
    try:
        with open(file, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise PreflightError(f"{file}: not a safetensors checkpoint (shorter than its 8-byte header length)")
            (length,) = struct.unpack("<Q", head)
            if not 2 <= length <= _MAX_HEADER:
                raise PreflightError(f"{file}: not a safetensors checkpoint (header length {length})")
            text = f.read(length)
    except OSError as exc:
        raise PreflightError(f"{file}: cannot be read ({exc.strerror or exc})") from None
    if len(text) < length:
        raise PreflightError(f"{file}: not a safetensors checkpoint (truncated header)")
    try:
        header = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise PreflightError(f"{file}: not a safetensors checkpoint (its header is not JSON)") from None
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(header, dict) or (meta is not None and not isinstance(meta, dict)):
        raise PreflightError(f"{file}: not a safetensors checkpoint (malformed header)")
    return meta or {}


def check_servable(path: str | os.PathLike) -> str:
    """The kind of the checkpoint at `path` (a file, a run directory, a sharded model directory: "sharded"), told
    from its header alone; PreflightError naming the file for a missing path, a directory without a checkpoint, a
    file that is not safetensors, or one that holds neither a model nor an agent."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise PreflightError(f"{path}: does not exist")
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, SHARDED_DENSE)):
        return "sharded"
    file = checkpoint_file(path)
    meta = header_metadata(file)
    kind = meta.get("kind", "model")
    if kind not in SERVABLE_KINDS or ("kind" not in meta and "config" not in meta):
        raise PreflightError(f"{file}: holds no model and no agent (metadata kind {meta.get('kind')!r})")
    return kind
