"""Data-parallel training of the large model: the windows each rank trains on, 1 vs 2 processes on a small
synthetic dataset with the same epoch budget, and the 2-process run's checkpoints (model file and sharded)."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch

from recengine.distributed.train_sasrec import SHARDED, rank_batches
from recengine.train import sasrec_checkpoint
from recengine.train.sasrec import MODEL
from tests.distributed.conftest import SASREC_CONFIG


@pytest.mark.parametrize("world", [1, 2, 3])
def test_rank_batches_are_disjoint_equal_shares(world):
    lengths = np.random.default_rng(0).integers(1, 10, size=101)
    shares = [np.concatenate(rank_batches(lengths, 8, 0, 1, r, world)) for r in range(world)]
    every = np.concatenate(shares)
    assert len(set(every.tolist())) == len(every) == (101 // world) * world
    assert len({len(rank_batches(lengths, 8, 0, 1, r, world)) for r in range(world)}) == 1


def test_rank_batches_change_with_the_epoch():
    lengths = np.ones(64, dtype=np.int64)
    first = np.concatenate(rank_batches(lengths, 8, 0, 1, 0, 2))
    second = np.concatenate(rank_batches(lengths, 8, 0, 2, 0, 2))
    assert set(first.tolist()) != set(second.tolist())


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"rank": 2, "world_size": 2}, "rank"), ({"rank": 0, "world_size": 200}, "window_lengths")]
)
def test_rank_batches_reject_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        rank_batches(np.ones(100, dtype=np.int64), 8, 0, 1, **kwargs)


def test_two_processes_reach_the_test_ndcg_of_one(sasrec_runs):
    # The runs differ in dropout masks and batch composition, not in expectation. NDCG lies in [0, 1], so a
    # mean over n users has a standard error of at most sqrt(mu (1 - mu) / n); the difference of two such
    # means, at most sqrt(2) times that. The tolerance is three of those standard errors.
    mu = sasrec_runs["one"].test["ndcg@10"]
    tolerance = 3 * math.sqrt(2 * mu * (1 - mu) / sasrec_runs["users"])
    assert abs(sasrec_runs["two"].test["ndcg@10"] - mu) <= tolerance


def test_two_process_run_trains_the_epoch_budget(sasrec_runs):
    assert len(sasrec_runs["two"].history) == SASREC_CONFIG.max_epochs
    assert all(len(h["train_seconds_per_rank"]) == 2 for h in sasrec_runs["two"].history)


def test_two_process_model_file_loads_with_the_returned_weights(sasrec_runs):
    model, cfg = sasrec_checkpoint.load_model(os.path.join(sasrec_runs["out"], MODEL))
    assert cfg == SASREC_CONFIG
    want = sasrec_runs["two"].model.state_dict()
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(tensor, want[name], rtol=0, atol=0, msg=name)
    assert os.path.isdir(os.path.join(sasrec_runs["out"], SHARDED))


@pytest.mark.parametrize("entry", ["train_sasrec_distributed", "train_sasrec_torchrun"])
def test_a_final_fit_or_shuffled_batches_are_refused_before_any_process_starts(entry):
    import recengine.distributed.train_sasrec as ddp
    from recengine.data import make_synthetic
    from recengine.train import SASRecConfig

    data = make_synthetic(10, 8, min_len=3, max_len=5, seed=0)
    with pytest.raises(ValueError, match="train_on_valid"):
        getattr(ddp, entry)(data, SASRecConfig(train_on_valid=True), progress=False)
    with pytest.raises(ValueError, match="length_buckets"):
        getattr(ddp, entry)(data, SASRecConfig(length_buckets=False), progress=False)
