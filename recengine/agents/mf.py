"""BPR matrix factorisation, the non-sequential baseline of the leave-one-out evaluation.

It produces the same thing the sequence model does, user states Q, an item table E and an item bias,
so it goes through the same full-ranking evaluator (recengine.eval.metrics) with the same exclusion lists.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recengine.data.sequences import LeaveOneOut, gather_csr
from recengine.eval.metrics import NDCG_AT_10, evaluate_ranking
from recengine.eval.offline import eval_inputs
from recengine.nn.gather_rows import gather_rows
from recengine.progress import progress_bar


@dataclass
class BPRConfig:
    dim: int = 64
    #: passes over the training interactions (one sampled negative per positive each)
    epochs: int = 40
    lr: float = 5e-3
    #: L2 penalty on the embeddings in a step
    reg: float = 1e-4
    batch_size: int = 2048
    #: validation NDCG@10 every this many epochs; the best state is kept
    eval_every: int = 5
    seed: int = 0


class BPR(nn.Module):
    """x_ui = <p_u, q_i> + b_i, trained with the pairwise BPR loss."""

    def __init__(self, num_users: int, num_items: int, dim: int = 64):
        super().__init__()
        self.user = nn.Parameter(torch.randn(num_users, dim) * 0.1)
        self.item = nn.Parameter(torch.randn(num_items, dim) * 0.1)
        self.bias = nn.Parameter(torch.zeros(num_items))

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return (gather_rows(self.user, users) * gather_rows(self.item, items)).sum(-1) + gather_rows(self.bias, items)


def train_bpr(split: LeaveOneOut, config: BPRConfig | None = None, progress: bool = True) -> tuple[BPR, dict]:
    """Fit BPR on the training prefixes; returns the model with the best validation NDCG@10 and a summary."""
    cfg = config or BPRConfig()
    h = split.histories
    rng = np.random.default_rng(cfg.seed)
    starts = h.offsets[:-1]
    counts = split.train_end - starts
    pos_users = np.repeat(np.arange(h.num_users), counts)
    _, pos_items = gather_csr(h.items, starts, split.train_end)
    seen = None
    if h.num_users * h.num_items <= 50_000_000:  # re-draw negatives the user has seen (dense bitmap when small)
        seen = np.zeros((h.num_users, h.num_items), dtype=bool)
        seen[pos_users, pos_items] = True
    with torch.random.fork_rng(devices=[]):  # the initial embeddings from cfg.seed; the caller's RNG untouched
        torch.manual_seed(cfg.seed)
        model = BPR(h.num_users, h.num_items, cfg.dim)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    best, best_state, best_epoch = -1.0, None, 0
    t0 = time.perf_counter()
    bar = progress_bar(range(1, cfg.epochs + 1), desc="BPR", unit="epoch", disable=not progress, leave=False)
    for epoch in bar:
        order = rng.permutation(len(pos_users))
        neg = rng.integers(0, h.num_items, size=len(pos_users))
        if seen is not None:
            for _ in range(5):
                clash = seen[pos_users, neg]
                if not clash.any():
                    break
                neg[clash] = rng.integers(0, h.num_items, size=int(clash.sum()))
        u_all, i_all, j_all = (torch.from_numpy(a[order]) for a in (pos_users, pos_items, neg))
        total = 0.0
        for b0 in range(0, len(order), cfg.batch_size):
            u, i, j = (t[b0 : b0 + cfg.batch_size] for t in (u_all, i_all, j_all))
            diff = model.score(u, i) - model.score(u, j)
            reg = cfg.reg * (model.user[u].pow(2).sum() + model.item[i].pow(2).sum() + model.item[j].pow(2).sum())
            loss = -F.logsigmoid(diff).mean() + reg / len(u)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(u)
        if epoch % cfg.eval_every == 0 or epoch == cfg.epochs:
            ndcg = evaluate_bpr(model, split, "valid")[NDCG_AT_10]
            bar.set_postfix(loss=f"{total / len(order):.4f}", val_ndcg=f"{ndcg:.4f}")
            if ndcg > best:
                best, best_epoch = ndcg, epoch
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if best_state is not None:
        model.load_state_dict(best_state)
    return model, {
        f"best_valid_{NDCG_AT_10}": best,
        "best_epoch": best_epoch,
        "train_seconds": time.perf_counter() - t0,
    }


def evaluate_bpr(model: BPR, split: LeaveOneOut, which: str = "test", ks=(10,)) -> dict[str, float]:
    users, targets, exc_off, exc_ids = eval_inputs(split, which)
    with torch.no_grad():
        Q = model.user[torch.from_numpy(users)]
        return evaluate_ranking(
            Q, model.item, targets, ks=ks, bias=model.bias, exclude_offsets=exc_off, exclude_ids=exc_ids
        )
