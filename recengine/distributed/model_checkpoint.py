"""Sharded checkpoints of the large model: the dense weights in one file, each sharded table as rank shards.

    save_sharded_model("runs/sasrec/sharded", sharded, dense_state, metadata)   # every rank (a collective)
    consolidate("runs/sasrec/sharded", "model.safetensors")   # one process: the file `recengine train` writes
    model, cfg = load_sharded_model("runs/sasrec/sharded")    # one process: the plain SequenceRecommender
    Recommender.load("runs/sasrec/sharded")                   # serving reads the directory as it is

Layout of the directory:
    dense.safetensors     the model file (recengine.train.sasrec_checkpoint, kind "model", same metadata) without the
                          sharded tables' tensors, plus metadata "sharded_tables": {state name: sub-directory}
    <table>/              a recengine.distributed.checkpoint of that ShardedEmbeddingTables (manifest + shards)

The tables are written first and the dense file last (by rank 0, atomically), so a directory with a dense
file names tables that are complete. Consolidating reads every table's rows from the shards (any number of
ranks wrote them) into the plain model's state names.
"""

from __future__ import annotations

import json
import os

from torch import Tensor

from recengine import checkpoint
from recengine.distributed import checkpoint as table_checkpoint
from recengine.distributed.sharded_sasrec import SHARDED_PARAMETERS, ShardedSASRec
from recengine.nn.sequence_recommender import SequenceRecommender
from recengine.train.config import SASRecConfig
from recengine.train.sasrec_checkpoint import model_from_checkpoint

__all__ = ["save_sharded_model", "is_sharded_model", "consolidate", "load_sharded_model", "DENSE"]

DENSE = "dense.safetensors"
"""the dense weights and the model metadata in a sharded model directory"""


def save_sharded_model(
    directory: str, sharded: ShardedSASRec, dense_state: dict[str, Tensor] | None, metadata: dict[str, str] | None
) -> None:
    """Write the sharded model: every rank its table shards, rank 0 the dense weights (`dense_state`: the plain
    state_dict, whose sharded tensors are left out) with `metadata`
    (recengine.train.sasrec_checkpoint.model_metadata)."""
    for table_name, tables in sharded.tables.items():
        table_checkpoint.save(tables, os.path.join(directory, table_name))
    comm = next(iter(sharded.tables.values())).comm
    if comm.rank == 0:
        if dense_state is None or metadata is None:
            raise ValueError("dense_state, metadata: rank 0 writes the dense file and needs both")
        names = {state: table for state, table in SHARDED_PARAMETERS.items() if table in sharded.tables}
        dense = {k: v for k, v in dense_state.items() if k not in names}
        checkpoint.write(
            os.path.join(directory, DENSE),
            dense,
            checkpoint.MODEL_KIND,
            {**metadata, "sharded_tables": json.dumps(names)},
        )
    comm.all_gather_objects(None)  # nobody returns before the dense file exists


def is_sharded_model(directory: str | os.PathLike) -> bool:
    """Whether `directory` holds a sharded model checkpoint (its dense file)."""
    return os.path.isfile(os.path.join(os.fspath(directory), DENSE))


def consolidate(directory: str | os.PathLike, out: str | None = None) -> tuple[dict[str, Tensor], dict[str, str]]:
    """The whole model of the sharded checkpoint in `directory` as (tensors, metadata) in the model file's format;
    with `out`, also written there as the model file `recengine train` writes. Raises CheckpointError naming
    the file when the dense file or a table's manifest is missing or does not fit."""
    directory = os.fspath(directory)
    path = os.path.join(directory, DENSE)
    tensors, meta = checkpoint.read(path)
    try:
        names = json.loads(meta.pop("sharded_tables"))
    except (KeyError, json.JSONDecodeError) as exc:
        raise checkpoint.CheckpointError(f"{path}: metadata field 'sharded_tables' is missing or not JSON") from exc
    if not isinstance(names, dict) or any(not isinstance(v, str) for v in names.values()):
        raise checkpoint.CheckpointError(f"{path}: metadata field 'sharded_tables' must map state names to tables")
    for state_name, table_name in names.items():
        table_dir = os.path.join(directory, table_name)
        try:
            tensors[state_name] = table_checkpoint.read_full_state(table_dir)["weights"]
        except (FileNotFoundError, ValueError, KeyError) as exc:
            raise checkpoint.CheckpointError(f"{table_dir}: table {table_name!r} unreadable ({exc})") from exc
    meta = {k: v for k, v in meta.items() if k not in ("format_version", "kind")}
    if out is not None:
        checkpoint.write(out, tensors, checkpoint.MODEL_KIND, meta)
    return tensors, meta


def load_sharded_model(directory: str | os.PathLike) -> tuple[SequenceRecommender, SASRecConfig]:
    """The plain SequenceRecommender and its config from a sharded checkpoint (one process), checked as
    recengine.train.sasrec_checkpoint.load_model checks a model file (errors name the dense file)."""
    tensors, meta = consolidate(directory)
    return model_from_checkpoint(os.path.join(os.fspath(directory), DENSE), tensors, meta)
