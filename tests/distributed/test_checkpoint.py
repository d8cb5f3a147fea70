"""Sharded checkpoints: re-sharding 2 -> 3 -> 1 ranks, loading into EmbeddingTables, a rank killed mid-save,
and bad checkpoints (the 2- and 3-rank parts run in the session's spawned worlds, see conftest.py)."""

from __future__ import annotations

import json
import os

import pytest
import torch

from recengine.distributed import ShardedEmbeddingTables, checkpoint
from recengine.nn.embedding_tables import EmbeddingTables, TableSpec
from recengine.optim import SGD, RowwiseAdagrad
from tests.distributed import worlds
from tests.distributed.conftest import CHECKPOINT_SCENARIO
from tests.helpers import assert_close


def _ok(result):
    status, value = result
    assert status == "ok", f"the rank failed: {value}"
    return value


def _assert_same_state(got: dict, want: dict) -> None:
    assert sorted(got) == sorted(want)
    for name in want:
        assert_close(got[name], want[name], rtol=0, atol=0, name=name)


def test_checkpoint_of_2_ranks_loads_on_3(world2, world3):
    _assert_same_state(_ok(world3["ranks"][0]["load"]), _ok(world2[0]["save"]))


def test_checkpoint_resaved_by_3_ranks_loads_in_one_process(world2, world3, checkpoint_dirs):
    tables = ShardedEmbeddingTables(
        worlds.SPECS,
        pooling=CHECKPOINT_SCENARIO.pooling,
        optimizer=worlds.make_optimizer(CHECKPOINT_SCENARIO.optimizer),
    )
    checkpoint.load(tables, checkpoint_dirs["resaved_by_3"])
    _assert_same_state(tables.full_state_dict(), _ok(world2[0]["save"]))


def test_sharded_checkpoint_loads_into_embedding_tables(world2, checkpoint_dirs):
    tables = EmbeddingTables(worlds.SPECS, optimizer=worlds.make_optimizer(CHECKPOINT_SCENARIO.optimizer))
    checkpoint.load_embedding_tables(tables, checkpoint_dirs["saved_by_2"])
    _assert_same_state(tables.state_dict(), _ok(world2[0]["save"]))


def test_rank_killed_mid_save_leaves_the_previous_checkpoint(world3, checkpoint_dirs):
    first = _ok(world3["ranks"][0]["killed"])["first"]
    state = checkpoint.read_full_state(checkpoint_dirs["killed"])
    _assert_same_state(state, first)


def test_survivors_of_a_killed_rank_get_an_error_instead_of_hanging(world3):
    assert world3["ended"] is not None and sorted(world3["ended"].errors) == [2]
    assert "exit code 3" in world3["ended"].errors[2]
    for rank in (0, 1):
        assert _ok(world3["ranks"][rank]["killed"])["error"] is not None


# ------------------------------------------------------------------------------ in one process
SPECS = [TableSpec("a", 6, 2), TableSpec("b", 3, 2)]


def _saved(tmp_path, optimizer=None) -> tuple[ShardedEmbeddingTables, str]:
    tables = ShardedEmbeddingTables(SPECS, optimizer=optimizer or RowwiseAdagrad(lr=0.1), seed=1)
    directory = str(tmp_path / "ckpt")
    checkpoint.save(tables, directory)
    return tables, directory


def test_a_new_save_replaces_the_previous_save_directory(tmp_path):
    tables, directory = _saved(tmp_path)
    checkpoint.save(tables, directory)
    assert sorted(e for e in os.listdir(directory) if e.startswith("save-")) == ["save-2"]
    assert checkpoint.read_manifest(directory)["save"] == 2


def test_missing_manifest_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest"):
        checkpoint.read_manifest(str(tmp_path))


@pytest.mark.parametrize("field,value,message", [("version", 99, "version 99"), ("format", "x", "format 'x'")])
def test_manifest_of_another_format_or_version_raises_naming_the_file(tmp_path, field, value, message):
    _, directory = _saved(tmp_path)
    path = os.path.join(directory, "manifest.json")
    with open(path) as f:
        manifest = json.load(f)
    manifest[field] = value
    with open(path, "w") as f:
        json.dump(manifest, f)
    with pytest.raises(ValueError, match=message) as info:
        checkpoint.read_manifest(directory)
    assert "manifest.json" in str(info.value)


def test_loading_into_other_tables_raises(tmp_path):
    _, directory = _saved(tmp_path)
    other = ShardedEmbeddingTables([TableSpec("a", 7, 2), TableSpec("b", 3, 2)], optimizer=SGD(lr=0.1))
    with pytest.raises(ValueError, match="the model has"):
        checkpoint.load(other, directory)


def test_loading_without_the_optimizer_state_the_model_needs_raises(tmp_path):
    _, directory = _saved(tmp_path, optimizer=SGD(lr=0.1))
    tables = ShardedEmbeddingTables(SPECS, optimizer=RowwiseAdagrad(lr=0.1))
    with pytest.raises(ValueError, match="momentum1"):
        checkpoint.load(tables, directory)


def test_checkpoint_round_trip_in_one_process(tmp_path):
    tables, directory = _saved(tmp_path)
    with torch.no_grad():
        tables.momentum1 += 0.5
    checkpoint.save(tables, directory)
    loaded = ShardedEmbeddingTables(SPECS, optimizer=RowwiseAdagrad(lr=0.1), seed=2)
    checkpoint.load(loaded, directory)
    _assert_same_state(loaded.full_state_dict(), tables.full_state_dict())
