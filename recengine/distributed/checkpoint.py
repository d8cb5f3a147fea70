"""Sharded checkpoints of ShardedEmbeddingTables: one safetensors file per rank plus a JSON manifest.

    checkpoint.save(tables, "ckpt/")          # every rank (a collective); ckpt/ on a shared file system
    checkpoint.load(tables, "ckpt/")          # any number of ranks, any plan: rows are re-sharded
    checkpoint.load_embedding_tables(EmbeddingTables(...), "ckpt/")   # one process, the whole model

Layout of `ckpt/`:
    manifest.json              {"format", "version", "save", "world_size", "specs", "pooling", "optimizer",
                                "state": [tensor names], "files": [{"file", "rank", "shards": [...]}]}
    save-<n>/rank-<r>.safetensors    rank r's stacked shards: "weights" (R_r, D), optimizer state, "step"

Each save goes to a fresh `save-<n>/` directory, every file written atomically (temporary file, then
rename); the manifest is written last, by rank 0, once every rank has written its file, and only then are
older save directories removed. A crash at any point (a rank killed mid-save included) leaves the manifest
pointing at the previous complete save.
"""

from __future__ import annotations

import json
import os
import shutil

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from recengine._atomic import atomic_path, write_text
from recengine.distributed.sharded_tables import ShardedEmbeddingTables
from recengine.nn.embedding_tables import EmbeddingTables, TableSpec

__all__ = ["save", "load", "read_full_state", "load_embedding_tables", "FORMAT", "VERSION"]

FORMAT = "recengine.sharded_embedding_tables"
VERSION = 1
MANIFEST = "manifest.json"


def _optimizer_record(optimizer) -> dict | None:
    if optimizer is None:
        return None
    record = {"kind": optimizer.kind, "lr": float(optimizer.lr)}
    for name in ("eps", "betas"):
        if hasattr(optimizer, name):
            record[name] = getattr(optimizer, name)
    return record


def read_manifest(directory: str) -> dict:
    """The manifest of the checkpoint in `directory`, checked for format and version."""
    path = os.path.join(directory, MANIFEST)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no checkpoint manifest here")
    with open(path) as f:
        try:
            manifest = json.load(f)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{path}: format {manifest.get('format')!r} is not {FORMAT!r}")
    if manifest.get("version") != VERSION:
        raise ValueError(f"{path}: version {manifest.get('version')!r}; this recengine reads version {VERSION}")
    _check_manifest(manifest, path)
    return manifest


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_manifest(manifest: dict, path: str) -> None:
    """The manifest's fields have the types and ranges ``save`` writes: tables with row counts and widths,
    files inside the checkpoint directory, each shard a row range inside a known table."""
    specs, files, state = manifest.get("specs"), manifest.get("files"), manifest.get("state")
    if not isinstance(specs, list) or not specs:
        raise ValueError(f"{path}: 'specs' must be a non-empty list of tables")
    rows = {}
    for k, s in enumerate(specs):
        if not (
            isinstance(s, dict)
            and isinstance(s.get("name"), str)
            and _is_count(s.get("num_rows"))
            and _is_count(s.get("dim"))
            and s["dim"] > 0
        ):
            raise ValueError(f"{path}: specs[{k}] must be {{name, num_rows >= 0, dim >= 1}}, got {s!r}")
        rows[s["name"]] = s["num_rows"]
    if not isinstance(state, list) or not all(isinstance(n, str) for n in state):
        raise ValueError(f"{path}: 'state' must be a list of tensor names")
    if not isinstance(files, list) or not files:
        raise ValueError(f"{path}: 'files' must be a non-empty list of shard files")
    for k, entry in enumerate(files):
        file = entry.get("file") if isinstance(entry, dict) else None
        if not isinstance(file, str) or os.path.isabs(file) or ".." in file.replace("\\", "/").split("/"):
            raise ValueError(f"{path}: files[{k}]['file'] must be a path inside the checkpoint, got {file!r}")
        shards = entry.get("shards")
        if not isinstance(shards, list):
            raise ValueError(f"{path}: files[{k}]['shards'] must be a list")
        for shard in shards:
            ok = (
                isinstance(shard, dict)
                and shard.get("table") in rows
                and _is_count(shard.get("row_start"))
                and _is_count(shard.get("row_end"))
                and shard["row_start"] <= shard["row_end"] <= rows[shard["table"]]
            )
            if not ok:
                raise ValueError(
                    f"{path}: files[{k}] ({file}) holds shard {shard!r}: not a row range of a table in 'specs'"
                )


class _Shard:
    """One shard file opened for reading: a missing, truncated or foreign file, or a tensor shorter than the
    manifest says, is a ValueError naming the file (never rows nobody wrote)."""

    def __init__(self, path: str):
        self.path = path
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: a shard file the checkpoint manifest names is missing")
        try:
            self._file = safe_open(path, framework="pt")
        except Exception as exc:  # safetensors raises its own error types for truncated or foreign bytes
            raise ValueError(f"{path}: not a readable safetensors shard file ({exc})") from None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        del self._file
        return False

    def rows(self, name: str, first: int, last: int, trailing: tuple[int, ...]) -> Tensor:
        """Rows [first, last) of tensor `name`: float32, each row of shape `trailing`, every value finite."""
        try:
            view = self._file.get_slice(name)
            shape = view.get_shape()
            dtype = view.get_dtype()
        except Exception as exc:
            raise ValueError(f"{self.path}: no readable tensor {name!r} ({exc})") from None
        if not shape or shape[0] < last:
            raise ValueError(
                f"{self.path}: tensor {name!r} has {shape[0] if shape else 0} rows, the manifest places rows up "
                f"to {last} in it"
            )
        if tuple(shape[1:]) != tuple(trailing) or dtype != "F32":
            raise ValueError(
                f"{self.path}: tensor {name!r} is {dtype} with rows of shape {tuple(shape[1:])}, expected F32 rows "
                f"of shape {tuple(trailing)} (as the other shards and the table)"
            )
        try:
            rows = view[first:last]
        except Exception as exc:
            raise ValueError(f"{self.path}: tensor {name!r} cannot be read ({exc})") from None
        if not bool(torch.isfinite(rows).all()):
            raise ValueError(f"{self.path}: tensor {name!r} holds values that are not finite")
        return rows

    def tensor(self, name: str) -> Tensor:
        try:
            return self._file.get_tensor(name)
        except Exception as exc:
            raise ValueError(f"{self.path}: no readable tensor {name!r} ({exc})") from None

    def shape(self, name: str) -> list[int]:
        try:
            return self._file.get_slice(name).get_shape()
        except Exception as exc:
            raise ValueError(f"{self.path}: no readable tensor {name!r} ({exc})") from None


def save(tables: ShardedEmbeddingTables, directory: str) -> None:
    """Write `tables` (every rank calls this; the directory must be shared by the ranks)."""
    comm = tables.comm
    previous = 0
    if comm.rank == 0 and os.path.exists(os.path.join(directory, MANIFEST)):
        previous = int(read_manifest(directory)["save"])
    number = int(comm.all_gather_objects(previous + 1)[0])  # rank 0's choice, known to every rank
    relative = os.path.join(f"save-{number}", f"rank-{comm.rank}.safetensors")
    tensors = {name: t.detach().cpu().contiguous() for name, t in tables.local_state().items()}
    with atomic_path(os.path.join(directory, relative)) as tmp:
        save_file(tensors, tmp, metadata={"format": FORMAT, "rank": str(comm.rank)})
    shards = [{"table": s.table, "row_start": s.row_start, "row_end": s.row_end} for s in tables.shards]
    files = comm.all_gather_objects({"file": relative, "rank": comm.rank, "shards": shards})  # all written
    if comm.rank == 0:
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "save": number,
            "world_size": comm.world_size,
            "specs": [{"name": s.name, "num_rows": s.num_rows, "dim": s.dim} for s in tables.specs],
            "pooling": tables.pooling,
            "optimizer": _optimizer_record(tables.optimizer),
            "state": sorted(tensors),
            "files": files,
        }
        write_text(os.path.join(directory, MANIFEST), json.dumps(manifest, indent=1))
        for entry in os.listdir(directory):
            if entry.startswith("save-") and entry != f"save-{number}":
                shutil.rmtree(os.path.join(directory, entry), ignore_errors=True)
    comm.all_gather_objects(None)  # nobody returns before the manifest names this save


def _check_specs(manifest: dict, specs: tuple[TableSpec, ...], directory: str) -> None:
    saved = [(s["name"], s["num_rows"], s["dim"]) for s in manifest["specs"]]
    wanted = [(s.name, s.num_rows, s.dim) for s in specs]
    if saved != wanted:
        raise ValueError(
            f"{os.path.join(directory, MANIFEST)}: the checkpoint holds tables {saved}, the model has {wanted}"
        )


def _check_state(manifest: dict, names: list[str], directory: str) -> None:
    missing = [n for n in names if n not in manifest["state"]]
    if missing:
        raise ValueError(
            f"{os.path.join(directory, MANIFEST)}: the model needs state {missing}, the checkpoint "
            f"has {manifest['state']} (saved with optimizer {manifest['optimizer']})"
        )


def _copy_rows(manifest: dict, directory: str, name: str, table: str, start: int, end: int, out: Tensor) -> None:
    """Fill out[0:end-start] with rows [start, end) of `table`'s state `name`, from every saved shard that
    overlaps them (only those rows are read). Rows that no shard holds are a ValueError: nothing is returned
    that no file filled."""
    filled = torch.zeros(end - start, dtype=torch.bool)
    for entry in manifest["files"]:
        path = os.path.join(directory, entry["file"])
        at = 0
        with _Shard(path) as f:
            for shard in entry["shards"]:
                size = shard["row_end"] - shard["row_start"]
                lo, hi = max(start, shard["row_start"]), min(end, shard["row_end"])
                if shard["table"] == table and hi > lo:
                    first = at + lo - shard["row_start"]
                    rows = f.rows(name, first, first + hi - lo, tuple(out.shape[1:]))
                    out[lo - start : hi - start] = rows.to(out.device)
                    filled[lo - start : hi - start] = True
                at += size
    if not filled.all():
        missing = int(torch.nonzero(~filled)[0]) + start
        raise ValueError(
            f"{os.path.join(directory, MANIFEST)}: no shard holds row {missing} of table {table!r} "
            f"({int((~filled).sum())} of rows [{start}, {end}) missing)"
        )


def _read_step(manifest: dict, directory: str) -> Tensor:
    with _Shard(os.path.join(directory, manifest["files"][0]["file"])) as f:
        return f.tensor("step")


@torch.no_grad()
def load(tables: ShardedEmbeddingTables, directory: str) -> None:
    """Fill this rank's shards from a checkpoint written by any number of ranks under any plan."""
    manifest = read_manifest(directory)
    _check_specs(manifest, tables.specs, directory)
    state = tables.local_state()
    _check_state(manifest, list(state), directory)
    for name, local in state.items():
        if name == "step":
            local.copy_(_read_step(manifest, directory))
            continue
        at = 0
        for shard in tables.shards:
            _copy_rows(
                manifest, directory, name, shard.table, shard.row_start, shard.row_end, local[at : at + shard.num_rows]
            )
            at += shard.num_rows


def read_full_state(directory: str) -> dict[str, Tensor]:
    """The whole model of a sharded checkpoint in EmbeddingTables' state_dict format (one process)."""
    manifest = read_manifest(directory)
    specs = manifest["specs"]
    total = sum(s["num_rows"] for s in specs)
    full: dict[str, Tensor] = {}
    for name in manifest["state"]:
        if name == "step":
            full[name] = _read_step(manifest, directory)
            continue
        first = os.path.join(directory, manifest["files"][0]["file"])
        with _Shard(first) as f:
            trailing = f.shape(name)[1:]
        dims = {s["dim"] for s in specs}
        if name == "weights" and len(dims) == 1 and tuple(trailing) != (*dims,):
            raise ValueError(
                f"{first}: tensor 'weights' has rows of shape {tuple(trailing)}, the tables' dim is {dims}"
            )
        out = torch.empty((total, *trailing), dtype=torch.float32)
        start = 0
        for s in specs:
            _copy_rows(manifest, directory, name, s["name"], 0, s["num_rows"], out[start : start + s["num_rows"]])
            start += s["num_rows"]
        full[name] = out
    return full


def load_embedding_tables(tables: EmbeddingTables, directory: str) -> EmbeddingTables:
    """Load a sharded checkpoint into a single-process EmbeddingTables (same specs); returns `tables`."""
    manifest = read_manifest(directory)
    _check_specs(manifest, tables.specs, directory)
    wanted = list(tables.state_dict())
    _check_state(manifest, wanted, directory)
    full = read_full_state(directory)
    tables.load_state_dict({name: full[name] for name in wanted})
    return tables
