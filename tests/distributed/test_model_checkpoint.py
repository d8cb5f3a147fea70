"""Sharded checkpoints of the large model: written by a 2-process run, consolidated in one process and served
with the same recommendations as the run's model file."""

from __future__ import annotations

import os
import shutil

import pytest
import torch

from recengine import checkpoint
from recengine.distributed.model_checkpoint import DENSE, consolidate, is_sharded_model, load_sharded_model
from recengine.distributed.train_sasrec import SHARDED
from recengine.serving.loading import load_any
from recengine.serving.recommender import Recommender
from recengine.train.sasrec import MODEL
from recengine.train.sasrec_checkpoint import load_model

HISTORIES = [[1, 2, 3], [5], [7, 8, 9, 10, 11, 12], [0, 40]]


def test_run_directory_holds_a_sharded_model(sasrec_runs):
    assert is_sharded_model(os.path.join(sasrec_runs["out"], SHARDED))
    assert not is_sharded_model(sasrec_runs["out"])


def test_sharded_checkpoint_loads_the_best_weights(sasrec_runs):
    model, _ = load_sharded_model(os.path.join(sasrec_runs["out"], SHARDED))
    want = sasrec_runs["two"].model.state_dict()
    got = model.state_dict()
    assert sorted(got) == sorted(want)
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=0, atol=0, msg=name)


def test_serving_the_sharded_checkpoint_recommends_as_the_model_file(sasrec_runs):
    assert load_any(os.path.join(sasrec_runs["out"], SHARDED)).kind == "sharded"
    sharded = Recommender.load(os.path.join(sasrec_runs["out"], SHARDED)).recommend(HISTORIES, k=10)
    single = Recommender.load(os.path.join(sasrec_runs["out"], MODEL)).recommend(HISTORIES, k=10)
    assert torch.equal(sharded.items, single.items)
    torch.testing.assert_close(sharded.scores, single.scores)


def test_consolidate_writes_a_model_file(sasrec_runs, tmp_path):
    out = str(tmp_path / "model.safetensors")
    consolidate(os.path.join(sasrec_runs["out"], SHARDED), out)
    model, _ = load_model(out)
    want = sasrec_runs["two"].model.state_dict()
    assert all(torch.equal(t, want[n]) for n, t in model.state_dict().items())


@pytest.mark.parametrize("missing", ["item_ids", "item_features", DENSE])
def test_consolidate_names_what_is_missing(sasrec_runs, tmp_path, missing):
    copy = tmp_path / "sharded"
    shutil.copytree(os.path.join(sasrec_runs["out"], SHARDED), copy)
    target = copy / missing
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(checkpoint.CheckpointError, match=missing):
        consolidate(str(copy))
