"""`recengine train sasrec`: train the large model, set it against Pop and BPR, write the run directory.

The run directory holds checkpoint.safetensors (resumable), model.safetensors (best weights), metrics.json and
curve.png; metrics.json lists under "files" exactly the files the run wrote.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict

import torch

from recengine._atomic import write_text
from recengine.eval.metrics import HR_AT_10, MRR_AT_10, NDCG_AT_10
from recengine.machine import describe_machine
from recengine.train.config import SASRecConfig
from recengine.train.sasrec import CHECKPOINT, MODEL, train_sasrec


def train_command(
    dataset: str,
    out_dir: str,
    cfg: SASRecConfig,
    *,
    data_root: str | None = None,
    baselines: bool = True,
    bpr_epochs: int = 40,
    resume: bool = False,
    progress: bool = True,
    synthetic_kwargs: dict | None = None,
    min_item_count: int | None = None,
    log: Callable[..., None] = print,
    trainer: Callable = train_sasrec,
    written_before: tuple[str, ...] = (),
) -> dict:
    """Load `dataset` (a name ``recengine.data.load_dataset`` knows, "synthetic", or the path of your own data),
    train, evaluate against Pop and BPR, write checkpoint.safetensors, model.safetensors, metrics.json and
    curve.png into `out_dir`. Returns the metrics. `trainer` has train_sasrec's signature
    (recengine.distributed.train_sasrec's data-parallel trainers plug in here); `written_before` names the files
    the caller already wrote into `out_dir` for this run (the command line's config.json), listed with the rest
    under metrics.json's "files"."""
    from recengine.agents.mf import BPRConfig, evaluate_bpr, train_bpr
    from recengine.data import histories_of, leave_one_out
    from recengine.distributed.train_sasrec import load_training_data
    from recengine.eval.offline import evaluate_pop
    from recengine.report.training_curve import plot_curve

    data = load_training_data(
        dataset, cfg, data_root=data_root, synthetic_kwargs=synthetic_kwargs, min_item_count=min_item_count
    )
    split = leave_one_out(histories_of(data))
    log(
        f"{data.name}: {data.num_users} users, {data.num_items} items, {data.num_interactions} interactions; "
        f"{len(split.eval_users)} users evaluated (leave-one-out, full ranking, seen items excluded)"
    )
    result = trainer(data, cfg, out_dir=out_dir, resume=resume, split=split, progress=progress, log=log)
    metrics = {
        "dataset": data.name,
        "split": {
            "protocol": "leave-one-out by timestamp (ties in file order), full-catalog ranking",
            "users": int(data.num_users),
            "items": int(data.num_items),
            "interactions": int(data.num_interactions),
            "evaluated_users": int(len(split.eval_users)),
            "sha256": split.digest(),
        },
        "model": "sasrec",
        **result.test,
        "test_with_history": result.test_all,
        "epochs": len(result.history),
        "best_epoch": result.best_epoch,
        "train_seconds": round(result.train_seconds, 2),
        "train_cpu_seconds": round(sum(h.get("cpu_seconds", 0.0) for h in result.history), 2),
        "torch_threads": torch.get_num_threads(),
        "stopped": result.stopped,
        "best_valid": result.best_valid,
        "valid_held_out": not cfg.train_on_valid,  # a final fit trains on the validation item
        "config": asdict(cfg),
        "baselines": {},
    }
    log("test  " + "  ".join(f"{k} {v:.4f}" for k, v in result.test.items()) + "  (history excluded)")
    log("test  " + "  ".join(f"{k} {v:.4f}" for k, v in result.test_all.items()) + "  (history ranked too)")
    if baselines:
        pop = evaluate_pop(split, "test")
        bpr_model, info = train_bpr(split, BPRConfig(epochs=bpr_epochs, seed=cfg.seed), progress=progress)
        metrics["baselines"] = {
            "pop": pop,
            "bpr": {
                **evaluate_bpr(bpr_model, split, "test"),
                "train_seconds": round(info["train_seconds"], 2),
                "best_epoch": info["best_epoch"],
            },
        }
        for name, m in metrics["baselines"].items():
            log(f"{name:5s} " + "  ".join(f"{k} {m[k]:.4f}" for k in (HR_AT_10, NDCG_AT_10, MRR_AT_10)))
    from recengine.distributed.train_sasrec import SHARDED

    written = [name for name in (MODEL, CHECKPOINT, SHARDED) if os.path.exists(os.path.join(out_dir, name))]
    metrics["history"] = result.history
    metrics["machine"] = describe_machine()
    metrics["files"] = [*written_before, "metrics.json", "curve.png", *written]
    write_text(os.path.join(out_dir, "metrics.json"), json.dumps(metrics, indent=2))
    plot_curve(
        result.history, os.path.join(out_dir, "curve.png"), dict(metrics["baselines"]), title=f"SASRec on {data.name}"
    )
    log(f"wrote {out_dir}/metrics.json, curve.png, " + ", ".join(written))
    return metrics
