"""Data-parallel training of the large model: `recengine train sasrec --nproc 2`, or one process per rank under
torchrun (`torchrun --nproc-per-node 2 -m recengine train sasrec ...`).

    result = train_sasrec_distributed(data, SASRecConfig(), nproc=2, out_dir="runs/sasrec")   # local gloo ranks
    result.test                                       # rank 0's test metrics of the best weights, as train_sasrec

Each rank holds the dense parts of the model whole (DistributedDataParallel all-reduces their gradients) and a
row-wise share of the item, item-feature and user-feature tables (ShardedSASRec: the tables are gathered once
per step for the tied catalog head, their gradients go back to the owners). Per epoch, a seeded permutation of
the training windows (the same on every rank) is dealt round-robin, so each rank trains on a disjoint share
of equal size; each rank's batches hold `batch_size // world` windows, so the global batch and the number of
optimizer steps per epoch stay those of one process. Rank 0 gathers the tables, evaluates validation NDCG@10
with the plain model, decides early stopping and the time budget for every rank, and at the end writes the
model file `recengine train` writes (``model.safetensors``: serving and `compare` load it) and, with every rank,
the sharded checkpoint in ``sharded/`` (recengine.distributed.model_checkpoint).

Not supported with several processes: resuming (no training state is written), the NCCL/GPU path.
"""

from __future__ import annotations

import datetime
import os
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from recengine.data.sequences import LeaveOneOut, histories_of, leave_one_out, training_windows
from recengine.distributed.launch import run_local
from recengine.distributed.model_checkpoint import save_sharded_model
from recengine.distributed.sharded_sasrec import ShardedSASRec
from recengine.eval.metrics import HR_AT_10, MRR_AT_10, NDCG_AT_10
from recengine.eval.offline import evaluate_model
from recengine.padding import PAD_ID
from recengine.train.batching import length_bucketed_batches
from recengine.train.config import SASRecConfig
from recengine.train.sasrec import MODEL, TrainResult, _early_stop_message, _optimizer, model_from_data
from recengine.train.sasrec_checkpoint import model_metadata, save_model

__all__ = ["train_sasrec_distributed", "train_sasrec_torchrun", "rank_batches", "load_training_data", "SHARDED"]

SHARDED = "sharded"
"""the sharded checkpoint's directory in a run directory"""
COLLECTIVE_TIMEOUT_S = 600.0
"""how long a rank waits in a collective (the others wait while rank 0 evaluates)"""


def rank_batches(
    window_lengths: np.ndarray, batch_size: int, seed: int, epoch: int, rank: int, world_size: int
) -> list[np.ndarray]:
    """Rank `rank`'s batches of window indices for `epoch`: a permutation seeded by (seed, epoch), the same on
    every rank, dealt round-robin (the last ``len % world_size`` windows of it sit the epoch out, so every rank
    gets as many), then length-bucketed batches of ``max(1, batch_size // world_size)`` within the share. The
    shares are disjoint and every rank gets the same number of batches."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank: expected 0..{world_size - 1}, got {rank}")
    share_size = len(window_lengths) // world_size
    if share_size < 1:
        raise ValueError(f"window_lengths: {len(window_lengths)} training windows cannot feed {world_size} ranks")
    order = np.random.default_rng([seed, epoch]).permutation(len(window_lengths))
    share = order[rank : share_size * world_size : world_size]
    per_rank = max(1, batch_size // world_size)
    batches = length_bucketed_batches(window_lengths[share], per_rank, np.random.default_rng([seed, epoch, rank]))
    return [share[b] for b in batches]


def _decide(cfg: SASRecConfig, state: dict, valid: dict, epoch: int) -> tuple[bool, str]:
    """Rank 0: (improved, why training stops or "") after `epoch`, updating `state`."""
    improved = valid[NDCG_AT_10] > state["best_ndcg"]
    if improved:
        state.update(best_ndcg=valid[NDCG_AT_10], since_best=0, best_epoch=epoch, best_valid=valid)
    else:
        state["since_best"] += 1
    if state["since_best"] >= cfg.patience:
        return improved, _early_stop_message(cfg)
    if state["train_seconds"] >= cfg.max_seconds:
        return improved, f"time budget of {cfg.max_seconds:.0f}s reached"
    if epoch == cfg.max_epochs:
        return improved, f"max_epochs={cfg.max_epochs} reached"
    return improved, ""


def train_rank(
    rank: int,
    world_size: int,
    data,
    cfg: SASRecConfig,
    split: LeaveOneOut,
    out_dir: str | None,
    verbose: bool,
) -> dict:
    """One rank's training (torch.distributed initialised, `world_size` ranks). Rank 0 returns the run's
    history, best weights (the plain state_dict) and test metrics; every rank returns its seconds per epoch."""
    h = split.histories
    inputs, targets, owner = training_windows(h.items, h.offsets[:-1], split.train_end, cfg.max_len, cfg.stride)
    inputs_t, targets_t, owner_t = torch.from_numpy(inputs), torch.from_numpy(targets), torch.from_numpy(owner)
    window_lengths = (inputs != PAD_ID).sum(1)
    data_name = getattr(data, "name", "")
    item_ids = getattr(data, "raw_item_ids", None)
    with torch.random.fork_rng():  # this process's global RNG is left as it was
        torch.manual_seed(cfg.seed)  # the same initial model on every rank (and as one process draws it)
        model = model_from_data(data, cfg)
        evaluator = model_from_data(data, cfg) if rank == 0 else None
        torch.manual_seed(cfg.seed * 1_000_003 + rank + 1)  # each rank its own dropout masks
        table_group = dist.new_group(backend="gloo")  # the tables' all-to-alls apart from DDP's all-reduces
        sharded = ShardedSASRec(model, lr=cfg.lr, process_group=table_group)
        # the shards are ignored by DDP (ShardedSASRec marks them); the dense buffers are constants
        ddp = DistributedDataParallel(sharded, find_unused_parameters=True)
        opt = _optimizer(sharded.model, cfg)
        dense = [p for p in sharded.model.parameters() if p.requires_grad]
        state = {"best_ndcg": -1.0, "since_best": 0, "best_epoch": 0, "best_valid": {}, "train_seconds": 0.0}
        history: list[dict] = []
        rank_seconds: list[float] = []
        best_full, best_shards, stopped, epoch = None, sharded.local_shards(), "", 1
        while not stopped and epoch <= cfg.max_epochs:
            t0, cpu0 = time.perf_counter(), time.process_time()
            for tables in sharded.tables.values():
                tables.comm.reset_counters()
            ddp.train()
            total, count = 0.0, 0
            for idx in rank_batches(window_lengths, cfg.batch_size, cfg.seed, epoch, rank, world_size):
                idx = torch.from_numpy(idx)
                x, y = inputs_t[idx], targets_t[idx]
                width = int((x != PAD_ID).sum(1).max())
                loss = ddp(x[:, :width], y[:, :width], owner_t[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.clip:
                    nn.utils.clip_grad_norm_(dense, cfg.clip)
                opt.step()
                m = int((y != PAD_ID).sum())
                total, count = total + loss.item() * m, count + m
            train_seconds = time.perf_counter() - t0
            rank_seconds.append(train_seconds)
            sums = torch.tensor([total, float(count)], dtype=torch.float64)
            dist.all_reduce(sums)
            full = sharded.full_state_dict()  # a collective: every rank takes part, rank 0 uses it
            decision: list = [None]
            if rank == 0:
                evaluator.load_state_dict(full)
                valid = evaluate_model(evaluator, split, "valid")
                seconds = time.perf_counter() - t0
                state["train_seconds"] += seconds
                history.append(
                    {
                        "epoch": epoch,
                        "loss": float(sums[0] / max(sums[1], 1.0)),
                        "valid": valid,
                        "seconds": seconds,
                        "cpu_seconds": time.process_time() - cpu0,
                        "train_seconds_rank0": train_seconds,
                        "table_comm_seconds_rank0": sum(t.comm.seconds for t in sharded.tables.values()),
                    }
                )
                improved, stopped = _decide(cfg, state, valid, epoch)
                if improved:
                    best_full = full
                decision = [(improved, stopped)]
                if verbose:
                    print(
                        f"epoch {epoch:3d}  loss {history[-1]['loss']:.4f}  valid hr@10 {valid[HR_AT_10]:.4f} "
                        f"ndcg@10 {valid[NDCG_AT_10]:.4f} mrr@10 {valid[MRR_AT_10]:.4f}  {seconds:.1f}s "
                        f"({world_size} ranks){'  *' if improved else ''}",
                        flush=True,
                    )
            dist.broadcast_object_list(decision, src=0)
            improved, stopped = decision[0]
            if improved:
                best_shards = sharded.local_shards()
            epoch += 1
        sharded.load_local_shards(best_shards)
        result: dict = {"rank": rank, "seconds_per_epoch": rank_seconds}
        if rank == 0:
            if best_full is None:
                raise RuntimeError("no epoch was trained (max_epochs or the time budget allow none)")
            evaluator.load_state_dict(best_full)
            result.update(
                history=history,
                best_epoch=state["best_epoch"],
                best_valid=state["best_valid"],
                train_seconds=state["train_seconds"],
                stopped=stopped,
                test=evaluate_model(evaluator, split, "test"),
                state=best_full,
            )
            if out_dir:
                save_model(os.path.join(out_dir, MODEL), evaluator, cfg, data_name, item_ids=item_ids)
        if out_dir:
            meta = model_metadata(evaluator, cfg, data_name, item_ids) if rank == 0 else None
            save_sharded_model(os.path.join(out_dir, SHARDED), sharded, best_full, meta)
        dist.barrier()
    return result


def load_training_data(
    dataset: str,
    cfg: SASRecConfig,
    *,
    data_root: str | None = None,
    synthetic_kwargs=None,
    min_item_count: int | None = None,
):
    """The dataset `recengine train` trains on (what every torchrun rank loads for itself): "synthetic" (drawn
    with cfg.seed) or a name ``recengine.data.load_dataset`` knows, prepared by its benchmark protocol."""
    from recengine.data import load_dataset, make_synthetic

    if dataset == "synthetic":
        return make_synthetic(**(synthetic_kwargs or {}), seed=cfg.seed)
    return load_dataset(dataset, root=data_root, min_item_count=min_item_count)


def _result(data, cfg: SASRecConfig, rank0: dict, ranks: list[dict]) -> TrainResult:
    with torch.random.fork_rng():
        model = model_from_data(data, cfg)  # the weights are replaced just below
    model.load_state_dict(rank0["state"])
    result = TrainResult(
        model,
        cfg,
        history=rank0["history"],
        best_epoch=rank0["best_epoch"],
        best_valid=rank0["best_valid"],
        test=rank0["test"],
        train_seconds=rank0["train_seconds"],
        stopped=rank0["stopped"],
    )
    for entry, *per_rank in zip(result.history, *(r["seconds_per_epoch"] for r in ranks)):
        entry["train_seconds_per_rank"] = per_rank
    return result


def _check_schedule(cfg: SASRecConfig) -> None:
    if cfg.lr_schedule != "constant":
        raise ValueError(f"lr_schedule: the data-parallel trainer runs 'constant' only, got {cfg.lr_schedule!r}")
    if not cfg.length_buckets:
        raise ValueError("length_buckets: the data-parallel trainer deals length-bucketed batches only")
    if cfg.train_on_valid:
        raise ValueError(
            "train_on_valid: the data-parallel trainer holds the validation item out; train in one process"
        )


def train_sasrec_distributed(
    data,
    cfg: SASRecConfig | None = None,
    *,
    nproc: int = 2,
    out_dir: str | None = None,
    resume: bool = False,
    split: LeaveOneOut | None = None,
    progress: bool = True,
    log: Callable[..., None] = print,
    timeout_s: float | None = None,
) -> TrainResult:
    """train_sasrec's contract on `nproc` local gloo ranks (recengine.distributed.launch.run_local): the best
    model and its test metrics; with `out_dir`, ``model.safetensors`` and ``sharded/``. Each history entry adds
    ``train_seconds_per_rank`` (the training part of the epoch on each rank). `progress` prints rank 0's
    epochs. `timeout_s` (default: three times the time budget plus ten minutes) bounds the whole run."""
    cfg = cfg or SASRecConfig()
    _check_schedule(cfg)
    if resume:
        raise ValueError("resume: training on several processes does not resume; train from the start")
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise ValueError(f"nproc: expected an int >= 1, got {nproc!r}")
    split = split or leave_one_out(histories_of(data))
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
    log(f"training on {nproc} local processes (gloo), global batch {cfg.batch_size}")
    ranks = run_local(
        train_rank,
        nproc,
        (data, cfg, split, out_dir, progress),
        timeout_s=timeout_s or 3 * cfg.max_seconds + 600.0,
        collective_timeout_s=COLLECTIVE_TIMEOUT_S,
    )
    result = _result(data, cfg, ranks[0], ranks)
    if result.stopped:
        log(result.stopped)
    return result


def train_sasrec_torchrun(
    data,
    cfg: SASRecConfig | None = None,
    *,
    out_dir: str | None = None,
    resume: bool = False,
    split: LeaveOneOut | None = None,
    progress: bool = True,
    log: Callable[..., None] = print,
) -> TrainResult | None:
    """This process's rank of a torchrun world (RANK, WORLD_SIZE, MASTER_ADDR/PORT in the environment; gloo).
    Rank 0 returns the TrainResult, the other ranks None."""
    cfg = cfg or SASRecConfig()
    _check_schedule(cfg)
    if resume:
        raise ValueError("resume: training on several processes does not resume; train from the start")
    split = split or leave_one_out(histories_of(data))
    owns_group = not dist.is_initialized()
    if owns_group:
        dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=COLLECTIVE_TIMEOUT_S))
    try:
        rank, world = dist.get_rank(), dist.get_world_size()
        if out_dir and rank == 0:
            os.makedirs(out_dir, exist_ok=True)
        mine = train_rank(rank, world, data, cfg, split, out_dir, progress and rank == 0)
        gathered: list = [None] * world
        dist.all_gather_object(gathered, {"rank": rank, "seconds_per_epoch": mine["seconds_per_epoch"]})
    finally:
        if owns_group:
            dist.destroy_process_group()
    if rank != 0:
        return None
    result = _result(data, cfg, mine, gathered)
    if result.stopped:
        log(result.stopped)
    return result
