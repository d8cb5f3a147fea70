"""Supervised next-item training of the large model (SequenceEncoder + CatalogHead), SASRec style.

Every position of every training window predicts the next item with the full-catalog softmax
(``catalog_cross_entropy``: no negative sampling); AdamW; dropout; validation NDCG@10 after each epoch with
early stopping (the best weights are kept); a wall-clock budget; deterministic for a seed; a checkpoint after
every epoch (safetensors, written to a temporary file and renamed) from which training resumes exactly.

    data = load_movielens("ml-100k")                 # or make_synthetic(...)
    result = train_sasrec(data, SASRecConfig(), out_dir="runs/sasrec")
    result.test                                       # {"hr@10": ..., "ndcg@10": ..., "mrr@10": ...}
    model = load_model("runs/sasrec/model.safetensors")
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn
from tqdm import tqdm

from recengine._atomic import atomic_path, write_text
from recengine.data.sequences import (LeaveOneOut, histories_of, item_feature_bags, last_windows, leave_one_out,
                                      training_windows, user_feature_tables)
from recengine.eval.metrics import evaluate_ranking
from recengine.nn.catalog_head import CatalogHead
from recengine.nn.sequence_encoder import SequenceEncoder
from recengine.agents.mf import eval_inputs

CHECKPOINT = "checkpoint.safetensors"
MODEL = "model.safetensors"


@dataclass
class SASRecConfig:
    """Model and training settings; the defaults are tuned for ml-100k on a 2-core CPU."""

    #: state / item-vector width
    dim: int = 64
    #: window length (positions); longer histories are cut into windows of this length
    max_len: int = 50
    #: step between the ends of consecutive training windows of one user (default: max_len, no overlap)
    stride: int | None = None
    num_layers: int = 2
    num_heads: int = 2
    dropout: float = 0.3
    #: genres + year bucket through EmbeddingTables, added to the item-id embedding
    item_features: bool = True
    #: age / gender / occupation through EmbeddingTables, added at every position
    user_features: bool = False
    feature_dim: int = 16
    lr: float = 2e-3
    weight_decay: float = 0.05
    batch_size: int = 32
    #: gradient-norm clip (0 = none)
    clip: float = 1.0
    max_epochs: int = 200
    #: stop after this many epochs without a better validation NDCG@10
    patience: int = 10
    #: stop after this many seconds of training (checked after each epoch)
    max_seconds: float = 600.0
    seed: int = 0

    @classmethod
    def from_dict(cls, d: dict) -> "SASRecConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


class SequenceRecommender(nn.Module):
    """The encoder and its tied catalog head; built from a dataset by `from_data`."""

    def __init__(self, encoder: SequenceEncoder, head: CatalogHead, use_users: bool):
        super().__init__()
        self.encoder, self.head, self.use_users = encoder, head, use_users

    @classmethod
    def from_data(cls, data, cfg: SASRecConfig) -> "SequenceRecommender":
        kw = {}
        if cfg.item_features and data.item_features:
            tables, ids, offsets = item_feature_bags(data)
            kw.update(item_feature_tables=tables, item_feature_ids=torch.from_numpy(ids),
                      item_feature_offsets=torch.from_numpy(offsets))
        if cfg.user_features and data.user_features:
            tables = user_feature_tables(data)
            ids = np.stack([data.user_features[name] for name, _ in tables], axis=1)
            kw.update(user_feature_tables=tables, user_feature_ids=torch.from_numpy(ids))
        encoder = SequenceEncoder(data.num_items, cfg.dim, cfg.max_len, num_layers=cfg.num_layers,
                                  num_heads=cfg.num_heads, dropout=cfg.dropout, feature_dim=cfg.feature_dim, **kw)
        return cls(encoder, CatalogHead(data.num_items, cfg.dim), use_users="user_feature_tables" in kw)

    def loss(self, inputs: torch.Tensor, targets: torch.Tensor, users: torch.Tensor | None = None) -> torch.Tensor:
        """Mean next-item cross-entropy over the full catalog at every non-PAD target of the windows."""
        states = self.encoder(inputs, users if self.use_users else None)
        keep = targets >= 0
        return self.head.loss(states[keep], targets[keep], self.encoder.item_embeddings())

    @torch.no_grad()
    def user_states(self, histories: torch.Tensor, users: torch.Tensor | None = None) -> torch.Tensor:
        """(B, D) states after each history (B, L) (PAD = -1 anywhere), for scoring."""
        return self.encoder.last_state(histories, users if self.use_users else None)


def evaluate_model(model: SequenceRecommender, split: LeaveOneOut, which: str = "test", ks=(10,),
                   batch_size: int = 512) -> dict[str, float]:
    """Full-ranking HR/NDCG/MRR@K of the `which` target ("valid" or "test"), seen items excluded."""
    users, targets, exc_off, exc_ids = eval_inputs(split, which)
    h = split.histories
    windows, _ = last_windows(h.items, h.offsets[users], split.prefix_end(which)[users], model.encoder.max_len)
    was_training = model.training
    model.eval()
    states = []
    with torch.no_grad():
        for b0 in range(0, len(users), batch_size):
            w = torch.from_numpy(windows[b0:b0 + batch_size])
            u = torch.from_numpy(users[b0:b0 + batch_size])
            states.append(model.user_states(w, u))
        Q = torch.cat(states) if states else torch.zeros(0, model.encoder.dim)
        E = model.encoder.item_embeddings()
        out = evaluate_ranking(Q, E, targets, ks=ks, bias=model.head.bias, exclude_offsets=exc_off,
                               exclude_ids=exc_ids)
    model.train(was_training)
    return out


# ------------------------------------------------------------------------------------ checkpoints
def _atomic_save(tensors: dict[str, torch.Tensor], path: str, metadata: dict[str, str]) -> None:
    with atomic_path(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp, metadata=metadata)


def _model_metadata(model: SequenceRecommender, cfg: SASRecConfig, data_name: str) -> dict[str, str]:
    enc = model.encoder
    spec = {
        "num_items": enc.num_items,
        "item_feature_tables": [[s.name, s.num_rows] for s in enc.item_tables.specs] if enc.item_tables else [],
        "user_feature_tables": [[s.name, s.num_rows] for s in enc.user_tables.specs] if enc.user_tables else [],
    }
    return {"config": json.dumps(asdict(cfg)), "model": json.dumps(spec), "dataset": data_name}


def save_model(path: str, model: SequenceRecommender, cfg: SASRecConfig, data_name: str = "") -> None:
    """The model's weights and what is needed to rebuild it (load with `load_model`)."""
    _atomic_save(dict(model.state_dict()), path, _model_metadata(model, cfg, data_name))


def load_model(path: str) -> tuple[SequenceRecommender, SASRecConfig]:
    """Rebuild a SequenceRecommender saved by `save_model` (or the best weights in a training checkpoint)."""
    with safe_open(path, framework="pt") as f:
        meta = f.metadata() or {}
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    if "config" not in meta or "model" not in meta:
        raise ValueError(f"{path}: not a recengine model file (metadata lacks config/model)")
    if any(k.startswith("best.") for k in tensors):  # a training checkpoint: take its best weights
        tensors = {k[len("best."):]: v for k, v in tensors.items() if k.startswith("best.")}
    cfg = SASRecConfig.from_dict(json.loads(meta["config"]))
    spec = json.loads(meta["model"])
    kw = {}
    if spec["item_feature_tables"]:
        kw.update(item_feature_tables=[tuple(t) for t in spec["item_feature_tables"]],
                  item_feature_ids=tensors["encoder.item_feature_ids"],
                  item_feature_offsets=tensors["encoder.item_feature_offsets"])
    if spec["user_feature_tables"]:
        kw.update(user_feature_tables=[tuple(t) for t in spec["user_feature_tables"]],
                  user_feature_ids=tensors["encoder.user_feature_ids"])
    encoder = SequenceEncoder(spec["num_items"], cfg.dim, cfg.max_len, num_layers=cfg.num_layers,
                              num_heads=cfg.num_heads, dropout=cfg.dropout, feature_dim=cfg.feature_dim, **kw)
    model = SequenceRecommender(encoder, CatalogHead(spec["num_items"], cfg.dim), bool(spec["user_feature_tables"]))
    model.load_state_dict(tensors)
    return model, cfg


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], str]:
    sd = opt.state_dict()
    tensors = {}
    for idx, state in sd["state"].items():
        for key, value in state.items():
            tensors[f"optim.{idx}.{key}"] = torch.as_tensor(value)
    return tensors, json.dumps(sd["param_groups"])


def _load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: str) -> None:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = value
    opt.load_state_dict({"state": state, "param_groups": json.loads(groups)})


def _trajectory_fields(cfg: SASRecConfig) -> dict:
    """The settings a resumed run must share with the checkpoint (all but the stopping limits)."""
    d = asdict(cfg)
    for name in ("max_epochs", "max_seconds", "patience"):
        d.pop(name)
    return d


def _length_bucketed_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator):
    """Shuffled batches of window indices with similar lengths (less padding to compute): shuffle, sort each
    run of 16 batches by length, cut into batches, shuffle the batches."""
    order = rng.permutation(len(lengths))
    chunk = batch_size * 16
    batches = []
    for c0 in range(0, len(order), chunk):
        part = order[c0:c0 + chunk]
        part = part[np.argsort(-lengths[part], kind="stable")]
        batches += [part[b0:b0 + batch_size] for b0 in range(0, len(part), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


@dataclass
class TrainResult:
    model: SequenceRecommender
    config: SASRecConfig
    #: per epoch: {"epoch", "loss", "valid": {...}, "seconds"}
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_valid: dict = field(default_factory=dict)
    test: dict = field(default_factory=dict)
    train_seconds: float = 0.0
    stopped: str = ""


def train_sasrec(data, cfg: SASRecConfig | None = None, *, out_dir: str | None = None, resume: bool = False,
                 split: LeaveOneOut | None = None, progress: bool = True, log=print) -> TrainResult:
    """Train on the leave-one-out training prefixes of `data`; returns the best model and its test metrics.

    With `out_dir`, writes ``checkpoint.safetensors`` after every epoch (model, best weights, AdamW state,
    RNG state, history) and ``model.safetensors`` (best weights) at the end. `resume=True` continues from
    an existing checkpoint with the same results as an uninterrupted run.
    """
    cfg = cfg or SASRecConfig()
    split = split or leave_one_out(histories_of(data))
    h = split.histories
    inputs, targets, owner = training_windows(h.items, h.offsets[:-1], split.train_end, cfg.max_len, cfg.stride)
    inputs_t, targets_t = torch.from_numpy(inputs), torch.from_numpy(targets)
    owner_t = torch.from_numpy(owner)

    torch.manual_seed(cfg.seed)
    model = SequenceRecommender.from_data(data, cfg)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embedding" not in n and "tables" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "embedding" not in n and "tables" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
    result = TrainResult(model, cfg)
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    best_ndcg, since_best, start_epoch = -1.0, 0, 1
    ckpt = os.path.join(out_dir, CHECKPOINT) if out_dir else None

    if resume and ckpt and os.path.exists(ckpt):
        with safe_open(ckpt, framework="pt") as f:
            meta = f.metadata()
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        saved = SASRecConfig.from_dict(json.loads(meta["config"]))
        if _trajectory_fields(saved) != _trajectory_fields(cfg):
            raise ValueError(f"{ckpt}: was written with different settings {_trajectory_fields(saved)}; "
                             "resume with the same ones (only max_epochs, max_seconds, patience may change)")
        model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
        best_state = {k[len("best."):]: v for k, v in tensors.items() if k.startswith("best.")}
        _load_optimizer(opt, tensors, meta["optim_groups"])
        torch.set_rng_state(tensors["rng.torch"])
        trainer = json.loads(meta["trainer"])
        result.history, result.best_epoch = trainer["history"], trainer["best_epoch"]
        result.best_valid, result.train_seconds = trainer["best_valid"], trainer["train_seconds"]
        best_ndcg, since_best = trainer["best_ndcg"], trainer["since_best"]
        start_epoch = trainer["epoch"] + 1
        # an early stop is final; a run stopped by max_epochs or the time budget continues under the new limits
        result.stopped = trainer["stopped"] if trainer["stopped"].startswith("early stop") else ""
        if since_best >= cfg.patience:
            result.stopped = f"early stop: no better validation NDCG@10 for {cfg.patience} epochs"
        log(f"resumed from {ckpt} after epoch {trainer['epoch']}")

    def save_checkpoint(epoch: int) -> None:
        tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
        tensors.update({f"best.{k}": v for k, v in best_state.items()})
        optim, groups = _optimizer_tensors(opt)
        tensors.update(optim)
        tensors["rng.torch"] = torch.get_rng_state()
        meta = _model_metadata(model, cfg, getattr(data, "name", ""))
        meta["optim_groups"] = groups
        meta["trainer"] = json.dumps({
            "epoch": epoch, "history": result.history, "best_epoch": result.best_epoch,
            "best_valid": result.best_valid, "best_ndcg": best_ndcg, "since_best": since_best,
            "train_seconds": result.train_seconds, "stopped": result.stopped})
        _atomic_save(tensors, ckpt, meta)

    window_lengths = (inputs >= 0).sum(1)
    epoch = start_epoch
    bar = tqdm(total=cfg.max_epochs, initial=start_epoch - 1, desc="train", unit="epoch", disable=not progress)
    while not result.stopped and epoch <= cfg.max_epochs:
        t0, cpu0 = time.perf_counter(), time.process_time()
        model.train()
        total, count = 0.0, 0
        for idx in _length_bucketed_batches(window_lengths, cfg.batch_size, np.random.default_rng([cfg.seed, epoch])):
            idx = torch.from_numpy(idx)
            x, y = inputs_t[idx], targets_t[idx]
            width = int((x >= 0).sum(1).max())  # drop all-PAD columns at the end of the batch
            x, y = x[:, :width], y[:, :width]
            loss = model.loss(x, y, owner_t[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.clip:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            opt.step()
            m = int((y >= 0).sum())
            total += loss.item() * m
            count += m
        valid = evaluate_model(model, split, "valid")
        seconds = time.perf_counter() - t0
        result.train_seconds += seconds
        result.history.append({"epoch": epoch, "loss": total / max(count, 1), "valid": valid, "seconds": seconds,
                               "cpu_seconds": time.process_time() - cpu0})
        improved = valid["ndcg@10"] > best_ndcg
        if improved:
            best_ndcg, since_best, result.best_epoch, result.best_valid = valid["ndcg@10"], 0, epoch, valid
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            since_best += 1
        log(f"epoch {epoch:3d}  loss {total / max(count, 1):.4f}  valid hr@10 {valid['hr@10']:.4f} "
            f"ndcg@10 {valid['ndcg@10']:.4f} mrr@10 {valid['mrr@10']:.4f}  {seconds:.1f}s{'  *' if improved else ''}")
        bar.update(1)
        bar.set_postfix(loss=f"{total / max(count, 1):.3f}", val_ndcg=f"{valid['ndcg@10']:.4f}")
        if since_best >= cfg.patience:
            result.stopped = f"early stop: no better validation NDCG@10 for {cfg.patience} epochs"
        elif result.train_seconds >= cfg.max_seconds:
            result.stopped = f"time budget of {cfg.max_seconds:.0f}s reached"
        elif epoch == cfg.max_epochs:
            result.stopped = f"max_epochs={cfg.max_epochs} reached"
        if ckpt:
            save_checkpoint(epoch)
        epoch += 1
    bar.close()
    if result.stopped:
        log(result.stopped)
    model.load_state_dict(best_state)
    result.test = evaluate_model(model, split, "test")
    if out_dir:
        save_model(os.path.join(out_dir, MODEL), model, cfg, getattr(data, "name", ""))
    return result


# ------------------------------------------------------------------------------------------ command
def plot_curve(history: list[dict], path: str, baselines: dict | None = None, title: str = "") -> None:
    """Learning curve: training loss and validation NDCG@10 / HR@10 per epoch (baselines' test NDCG@10 dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(epochs, [h["loss"] for h in history], marker=".")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("train loss (full-catalog cross-entropy)")
    ax2.plot(epochs, [h["valid"]["ndcg@10"] for h in history], marker=".", label="valid NDCG@10")
    ax2.plot(epochs, [h["valid"]["hr@10"] for h in history], marker=".", label="valid HR@10")
    for i, (name, m) in enumerate((baselines or {}).items()):
        ax2.axhline(m["ndcg@10"], linestyle="--", color=f"C{i + 2}", label=f"{name} test NDCG@10")
    ax2.set_xlabel("epoch")
    ax2.legend(fontsize=8)
    fig.suptitle(title or "SASRec training")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def train_command(dataset: str, out_dir: str, cfg: SASRecConfig, *, root: str | None = None,
                  baselines: bool = True, bpr_epochs: int = 40, resume: bool = False, progress: bool = True,
                  synthetic_kwargs: dict | None = None, log=print) -> dict:
    """What `recengine train sasrec` does: load, train, evaluate against Pop and BPR, write
    checkpoint.safetensors, model.safetensors, metrics.json and curve.png into `out_dir`. Returns the metrics."""
    from recengine.agents.mf import BPRConfig, evaluate_bpr, evaluate_pop, train_bpr
    from recengine.data import load_movielens, make_synthetic

    if dataset == "synthetic":
        data = make_synthetic(**(synthetic_kwargs or {}), seed=cfg.seed)
    else:
        data = load_movielens(dataset, root=root)
    split = leave_one_out(histories_of(data))
    log(f"{data.name}: {data.num_users} users, {data.num_items} items, {data.num_interactions} interactions; "
        f"{len(split.eval_users)} users evaluated (leave-one-out, full ranking, seen items excluded)")
    result = train_sasrec(data, cfg, out_dir=out_dir, resume=resume, split=split, progress=progress, log=log)
    metrics = {
        "dataset": data.name, "model": "sasrec", **result.test,
        "epochs": len(result.history), "best_epoch": result.best_epoch,
        "train_seconds": round(result.train_seconds, 2),
        "train_cpu_seconds": round(sum(h.get("cpu_seconds", 0.0) for h in result.history), 2),
        "torch_threads": torch.get_num_threads(), "stopped": result.stopped,
        "best_valid": result.best_valid, "config": asdict(cfg), "baselines": {},
    }
    log("test  " + "  ".join(f"{k} {v:.4f}" for k, v in result.test.items()))
    if baselines:
        pop = evaluate_pop(split, "test")
        bpr_model, info = train_bpr(split, BPRConfig(epochs=bpr_epochs, seed=cfg.seed), progress=progress)
        metrics["baselines"] = {"pop": pop, "bpr": {**evaluate_bpr(bpr_model, split, "test"),
                                                    "train_seconds": round(info["train_seconds"], 2),
                                                    "best_epoch": info["best_epoch"]}}
        for name, m in metrics["baselines"].items():
            log(f"{name:5s} " + "  ".join(f"{k} {m[k]:.4f}" for k in ("hr@10", "ndcg@10", "mrr@10")))
    metrics["history"] = result.history
    write_text(os.path.join(out_dir, "metrics.json"), json.dumps(metrics, indent=2))
    plot_curve(result.history, os.path.join(out_dir, "curve.png"),
               {k: v for k, v in metrics["baselines"].items()}, title=f"SASRec on {data.name}")
    log(f"wrote {out_dir}/metrics.json, curve.png, {MODEL}, {CHECKPOINT}")
    return metrics
