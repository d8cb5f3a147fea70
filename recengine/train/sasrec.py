"""Supervised next-item training of the large model (SequenceEncoder + CatalogHead), SASRec style.

Every position of every training window predicts the next item with the full-catalog softmax
(``catalog_cross_entropy``: no negative sampling); AdamW; dropout; validation NDCG@10 after each epoch with
early stopping (the best weights are kept); a wall-clock budget; deterministic for a seed; a checkpoint after
every epoch (recengine.train.sasrec_checkpoint) from which training resumes exactly.

    data = load_movielens("ml-100k")                 # or make_synthetic(...)
    result = train_sasrec(data, SASRecConfig(), out_dir="runs/sasrec")
    result.test                                       # {"hr@10": ..., "ndcg@10": ..., "mrr@10": ...}
    model, cfg = recengine.train.sasrec_checkpoint.load_model("runs/sasrec/model.safetensors")
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

import recengine.train.sasrec_checkpoint as sasrec_checkpoint
from recengine import checkpoint
from recengine.data.item_text import item_texts, item_tfidf_bags
from recengine.data.movielens import cache_dir
from recengine.data.sequences import (
    LeaveOneOut,
    histories_of,
    item_feature_bags,
    leave_one_out,
    training_windows,
    user_feature_tables,
)
from recengine.eval.offline import evaluate_model
from recengine.nn.catalog_head import CatalogHead
from recengine.nn.sequence_encoder import encoder_from_config
from recengine.nn.sequence_recommender import SequenceRecommender
from recengine.nn.text_encoder import MiniLMEncoder, TextEncoder, cached_text_embeddings
from recengine.padding import PAD_ID
from recengine.progress import progress_bar
from recengine.train.batching import length_bucketed_batches, shuffled_batches
from recengine.train.cold_items import forget_cold_items, mask_cold_items
from recengine.train.config import SASRecConfig

CHECKPOINT = "checkpoint.safetensors"
"""the resumable training state in a run directory"""
MODEL = "model.safetensors"
"""the best weights in a run directory"""


def item_text_features(data, cfg: SASRecConfig, text_encoder: TextEncoder | None = None) -> dict:
    """The SequenceEncoder keywords of the item text `cfg.item_text` asks for: TF-IDF bags of the titles, or their
    frozen sentence embeddings (`text_encoder`, default MiniLM; cached under the recengine cache directory)."""
    if cfg.item_text == "tfidf":
        bags = item_tfidf_bags(data)
        return dict(
            item_text_vocab_size=max(len(bags.vocabulary), 1),
            item_text_ids=torch.from_numpy(bags.ids),
            item_text_offsets=torch.from_numpy(bags.offsets),
            item_text_weights=torch.from_numpy(bags.weights),
        )
    if cfg.item_text == "minilm":
        text_cache = os.path.join(cache_dir(), "text")
        encoder = text_encoder if text_encoder is not None else MiniLMEncoder(extract_dir=text_cache)
        vectors = cached_text_embeddings(item_texts(data), encoder, text_cache)
        return dict(item_text_vectors=vectors)
    return {}


def model_from_data(data, cfg: SASRecConfig, text_encoder: TextEncoder | None = None) -> SequenceRecommender:
    """A freshly initialised large model for `data` (its catalog and, as `cfg` asks, its side features and item
    text; `text_encoder` replaces MiniLM for item_text="minilm"), drawn from torch's global generator."""
    kw = item_text_features(data, cfg, text_encoder)
    if cfg.item_features and data.item_features:
        tables, ids, offsets = item_feature_bags(data)
        kw.update(
            item_feature_tables=tables,
            item_feature_ids=torch.from_numpy(ids),
            item_feature_offsets=torch.from_numpy(offsets),
        )
    if cfg.user_features and data.user_features:
        tables = user_feature_tables(data)
        ids = np.stack([data.user_features[name] for name, _ in tables], axis=1)
        kw.update(user_feature_tables=tables, user_feature_ids=torch.from_numpy(ids))
    encoder = encoder_from_config(data.num_items, cfg, **kw)
    if cfg.item_init_std is not None:  # rescaled, not redrawn: the generator's later draws stay as they were
        with torch.no_grad():
            encoder.item_embedding.mul_(cfg.item_init_std * cfg.dim**0.5)
    return SequenceRecommender(encoder, CatalogHead(data.num_items, cfg.dim), use_users="user_feature_tables" in kw)


@dataclass
class TrainResult:
    """The trained model (best weights) and how training went."""

    model: SequenceRecommender
    config: SASRecConfig
    history: list[dict] = field(default_factory=list)
    """per epoch: {"epoch", "loss", "valid": {...}, "seconds", "cpu_seconds"}"""
    best_epoch: int = 0
    best_valid: dict = field(default_factory=dict)
    test: dict = field(default_factory=dict)
    """test metrics, each user's history excluded from the ranking"""
    test_all: dict = field(default_factory=dict)
    """test metrics over the whole catalog, the history ranked too (the SASRec / BERT4Rec papers' protocol)"""
    train_seconds: float = 0.0
    stopped: str = ""
    """why training stopped (early stop, time budget, max_epochs)"""


def _optimizer(model: SequenceRecommender, cfg: SASRecConfig, *, fused: bool = False) -> torch.optim.AdamW:
    """AdamW with weight decay on the weight matrices only (not on embeddings, feature tables, biases, norms);
    `fused`: the single-kernel step, which needs no temporary the size of a parameter."""

    def decayed(name: str, p: torch.Tensor) -> bool:
        return p.dim() >= 2 and "embedding" not in name and "tables" not in name

    params = list(model.named_parameters())
    return torch.optim.AdamW(
        [
            {"params": [p for n, p in params if decayed(n, p)], "weight_decay": cfg.weight_decay},
            {"params": [p for n, p in params if not decayed(n, p)], "weight_decay": 0.0},
        ],
        lr=cfg.lr,
        **({"fused": True} if fused else {}),
    )


def training_optimizer(model: SequenceRecommender, cfg: SASRecConfig) -> torch.optim.AdamW:
    """The optimizer of a training run, with the model set up for ``cfg.memory``: on the lean path the history
    lookup of the item table gives a sparse gradient and AdamW is fused (SASRecConfig.memory)."""
    lean = cfg.lean_memory(model.encoder.num_items)
    model.encoder.sparse_input_grad = lean
    return _optimizer(model, cfg, fused=lean)


def cosine_lr(lr: float, progress: float, epochs: int) -> float:
    """The learning rate `progress` epochs into a cosine decay from `lr` to 0 over `epochs` epochs."""
    return 0.5 * lr * (1.0 + math.cos(math.pi * min(progress / epochs, 1.0)))


def _early_stop_message(cfg: SASRecConfig) -> str:
    return f"early stop: no better validation NDCG@10 for {cfg.patience} epochs"


def train_sasrec(
    data,
    cfg: SASRecConfig | None = None,
    *,
    out_dir: str | None = None,
    resume: bool = False,
    split: LeaveOneOut | None = None,
    progress: bool = True,
    log: Callable[..., None] = print,
    text_encoder: TextEncoder | None = None,
    cold_items: np.ndarray | None = None,
) -> TrainResult:
    """Train on the leave-one-out training prefixes of `data`; returns the best model and its test metrics.

    With `out_dir`, writes ``checkpoint.safetensors`` after every epoch (model, best weights, AdamW state,
    RNG state, history) and ``model.safetensors`` (best weights) at the end. `resume=True` continues from
    an existing checkpoint with the same results as an uninterrupted run. `text_encoder` replaces MiniLM for
    item_text="minilm". `cold_items` (item ids with no event in `split`'s training prefixes) are kept out of the
    training softmax and get a zero id vector in the returned model (recengine.train.cold_items).
    The run draws from its own copy of the global torch generator, seeded with ``cfg.seed``: the caller's RNG
    state is as it was afterwards.
    """
    with torch.random.fork_rng(devices=[]):
        return _train_sasrec(data, cfg, out_dir, resume, split, progress, log, text_encoder, cold_items)


def _train_sasrec(data, cfg, out_dir, resume, split, progress, log, text_encoder, cold_items) -> TrainResult:
    cfg = cfg or SASRecConfig()
    split = split or leave_one_out(histories_of(data))
    h = split.histories
    fit_end = split.train_end
    if cfg.train_on_valid:
        fit_end = split.prefix_end("test")
        log("train_on_valid: each validation item is a training target; the validation figures are not held out")
    inputs, targets, owner = training_windows(h.items, h.offsets[:-1], fit_end, cfg.max_len, cfg.stride)
    inputs_t, targets_t, owner_t = torch.from_numpy(inputs), torch.from_numpy(targets), torch.from_numpy(owner)
    data_name = getattr(data, "name", "")
    item_ids = getattr(data, "raw_item_ids", None)  # the model's item vocabulary, kept in its files

    torch.manual_seed(cfg.seed)
    model = model_from_data(data, cfg, text_encoder)
    if cold_items is not None:
        mask_cold_items(model, cold_items)
    opt = training_optimizer(model, cfg)
    result = TrainResult(model, cfg)
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    best_ndcg, since_best, start_epoch = -1.0, 0, 1
    ckpt = os.path.join(out_dir, CHECKPOINT) if out_dir else None

    if resume and ckpt and os.path.exists(ckpt):
        state = sasrec_checkpoint.load_training_state(ckpt)
        if state.config.trajectory_fields() != cfg.trajectory_fields():
            raise ValueError(
                f"{ckpt}: was written with different settings {state.config.trajectory_fields()}; "
                "resume with the same ones (only max_epochs, max_seconds, patience may change)"
            )
        expected = model.state_dict()
        checkpoint.check_tensors_match(ckpt, state.model, expected, "weights")
        checkpoint.check_tensors_match(ckpt, state.best, expected, "best weights")
        missing = [k for k in sasrec_checkpoint.TRAINER_FIELDS if k not in state.trainer]
        if missing:
            raise checkpoint.CheckpointError(f"{ckpt}: metadata field 'trainer' lacks {missing}")
        try:
            opt.load_state_dict(state.optimizer)
            torch.set_rng_state(state.rng)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise checkpoint.CheckpointError(
                f"{ckpt}: the optimizer or RNG state does not fit this model ({exc})"
            ) from None
        model.load_state_dict(state.model)
        best_state = state.best
        trainer = state.trainer
        result.history, result.best_epoch = trainer["history"], trainer["best_epoch"]
        result.best_valid, result.train_seconds = trainer["best_valid"], trainer["train_seconds"]
        best_ndcg, since_best = trainer["best_ndcg"], trainer["since_best"]
        start_epoch = trainer["epoch"] + 1
        # an early stop is final; a run stopped by max_epochs or the time budget continues under the new limits
        result.stopped = trainer["stopped"] if trainer["stopped"].startswith("early stop") else ""
        if since_best >= cfg.patience:
            result.stopped = _early_stop_message(cfg)
        log(f"resumed from {ckpt} after epoch {trainer['epoch']}")

    window_lengths = (inputs != PAD_ID).sum(1)
    epoch = start_epoch
    bar = progress_bar(total=cfg.max_epochs, initial=start_epoch - 1, desc="train", unit="epoch", disable=not progress)
    while not result.stopped and epoch <= cfg.max_epochs:
        t0, cpu0 = time.perf_counter(), time.process_time()
        model.train()
        total, count = 0.0, 0
        rng = np.random.default_rng([cfg.seed, epoch])
        if cfg.length_buckets:
            batches = length_bucketed_batches(window_lengths, cfg.batch_size, rng)
        else:
            batches = shuffled_batches(len(window_lengths), cfg.batch_size, rng)
        for step, idx in enumerate(batches):
            if cfg.lr_schedule == "cosine":  # a function of (epoch, step): a resumed run takes the same steps
                for group in opt.param_groups:
                    group["lr"] = cosine_lr(cfg.lr, epoch - 1 + step / len(batches), cfg.max_epochs)
            idx = torch.from_numpy(idx)
            x, y = inputs_t[idx], targets_t[idx]
            width = int((x != PAD_ID).sum(1).max())  # drop all-PAD_ID columns at the end of the batch
            x, y = x[:, :width], y[:, :width]
            loss = model.loss(x, y, owner_t[idx], label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.clip:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            opt.step()
            m = int((y != PAD_ID).sum())
            total += loss.item() * m
            count += m
        valid = evaluate_model(model, split, "valid")
        seconds = time.perf_counter() - t0
        result.train_seconds += seconds
        result.history.append(
            {
                "epoch": epoch,
                "loss": total / max(count, 1),
                "valid": valid,
                "seconds": seconds,
                "cpu_seconds": time.process_time() - cpu0,
            }
        )
        improved = cfg.train_on_valid or valid["ndcg@10"] > best_ndcg  # a final fit keeps its last weights
        if improved:
            best_ndcg, since_best, result.best_epoch, result.best_valid = valid["ndcg@10"], 0, epoch, valid
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            since_best += 1
        log(
            f"epoch {epoch:3d}  loss {total / max(count, 1):.4f}  valid hr@10 {valid['hr@10']:.4f} "
            f"ndcg@10 {valid['ndcg@10']:.4f} mrr@10 {valid['mrr@10']:.4f}  {seconds:.1f}s{'  *' if improved else ''}"
        )
        bar.update(1)
        bar.set_postfix(loss=f"{total / max(count, 1):.3f}", val_ndcg=f"{valid['ndcg@10']:.4f}")
        if since_best >= cfg.patience and not cfg.train_on_valid:
            result.stopped = _early_stop_message(cfg)
        elif result.train_seconds >= cfg.max_seconds:
            result.stopped = f"time budget of {cfg.max_seconds:.0f}s reached"
        elif epoch == cfg.max_epochs:
            result.stopped = f"max_epochs={cfg.max_epochs} reached"
        if ckpt:
            sasrec_checkpoint.save_training_state(
                ckpt,
                model,
                cfg,
                data_name,
                best=best_state,
                optimizer=opt,
                item_ids=item_ids,
                trainer={
                    "epoch": epoch,
                    "history": result.history,
                    "best_epoch": result.best_epoch,
                    "best_valid": result.best_valid,
                    "best_ndcg": best_ndcg,
                    "since_best": since_best,
                    "train_seconds": result.train_seconds,
                    "stopped": result.stopped,
                },
            )
        epoch += 1
    bar.close()
    if result.stopped:
        log(result.stopped)
    model.load_state_dict(best_state)
    if cold_items is not None:
        forget_cold_items(model, cold_items)
    result.test = evaluate_model(model, split, "test")
    result.test_all = evaluate_model(model, split, "test", exclude_seen=False)
    if out_dir:
        sasrec_checkpoint.save_model(os.path.join(out_dir, MODEL), model, cfg, data_name, item_ids=item_ids)
    return result
