"""The simulated users' response model: a sequence model of what a user consumes next, and its fit.

A ``ResponseModel`` is a ``SequenceEncoder`` with its own item table and an item bias ``b_j`` (the learned item
prior: the popularity part of the utility). For a history h the utility of item j is

    u_j(h) = beta · (<q(h), e_j> + popularity_weight · b_j)

and the next consumption, over the items the user has not consumed yet, is the softmax of u (the model is
trained for exactly that: the full-catalog softmax cross-entropy). The simulator turns it into a slate choice
(see ``recengine.env.sequential_sim``).

``fit_response_model`` trains it with the project's supervised trainer on the TRAIN part of a leave-one-out
split only: early stopping watches each user's last TRAIN item (a hold-out carved from train), so the valid and
test items never reach the fit. It is a separate instance with its own seed and training run, not the agents'
large model, and the global random state is left as the caller had it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from recengine.data import histories_of
from recengine.data.sequences import Histories, LeaveOneOut, gather_csr, last_windows
from recengine.eval.metrics import evaluate_ranking
from recengine.nn import SequenceEncoder
from recengine.ops._checks import check_number
from recengine.padding import PAD_ID

__all__ = [
    "ResponseModel",
    "fit_response_model",
    "train_only_split",
    "response_model_config",
    "popularity_log_likelihood",
    "train_histories",
]


MAX_WEIGHT = 1000.0
"""the largest beta and popularity_weight: beyond it the float32 utilities of ordinary weights overflow"""


@dataclass
class ResponseModel:
    """A user response model: encoder (with its item table) and item bias; ``beta`` in (0, MAX_WEIGHT] and
    ``popularity_weight`` in [0, MAX_WEIGHT] as in the module docstring."""

    encoder: SequenceEncoder
    item_bias: torch.Tensor
    beta: float = 1.0
    popularity_weight: float = 1.0

    def __post_init__(self):
        self.encoder.eval()
        self.item_bias = torch.as_tensor(self.item_bias, dtype=torch.float32).detach().reshape(-1).contiguous()
        if self.item_bias.shape != (self.encoder.num_items,):
            raise ValueError(f"item_bias must be ({self.encoder.num_items},), got {tuple(self.item_bias.shape)}")
        check_number("beta", self.beta, minimum=0.0, exclusive=True, maximum=MAX_WEIGHT)
        check_number("popularity_weight", self.popularity_weight, minimum=0.0, maximum=MAX_WEIGHT)
        if not bool(torch.isfinite(self.item_bias).all()):
            raise ValueError("item_bias: holds values that are not finite")
        with torch.no_grad():
            self._items = self.encoder.item_embeddings().detach().contiguous()
        if not bool(torch.isfinite(self._items).all()):
            raise ValueError("encoder: its item vectors are not finite")

    @property
    def num_items(self) -> int:
        return self.encoder.num_items

    @property
    def max_len(self) -> int:
        return self.encoder.max_len

    def item_table(self) -> torch.Tensor:
        """(N, D) item vectors e_j."""
        return self._items

    def effective_bias(self) -> torch.Tensor:
        """(N,) popularity_weight · b_j."""
        return self.popularity_weight * self.item_bias

    @torch.no_grad()
    def states(self, histories) -> torch.Tensor:
        """(B, D) float32 q(h) of (B, L) item histories (PAD = -1 anywhere; the last max_len items are used)."""
        h = torch.as_tensor(np.asarray(histories) if not isinstance(histories, torch.Tensor) else histories)
        if h.dim() != 2:
            raise ValueError(f"histories must be a (B, L) array of item ids, got shape {tuple(h.shape)}")
        h = h.to(torch.int64)
        if h.numel() and (int(h.max()) >= self.num_items or int(h.min()) < PAD_ID):
            raise IndexError(f"histories hold ids outside [-1, {self.num_items})")
        if h.shape[0] == 0:
            return torch.zeros(0, self.encoder.dim)
        return self.encoder.last_state(h).float()

    @torch.no_grad()
    def utilities(self, states: torch.Tensor) -> torch.Tensor:
        """(B, N) float32 u_j for every item (before removing consumed items)."""
        return self.beta * (states @ self._items.T + self.effective_bias())

    @torch.no_grad()
    def next_item_log_probs(self, states: torch.Tensor, consumed: torch.Tensor | None = None) -> torch.Tensor:
        """(B, N) float64 log P(next = j | h): softmax of u over the items not ``consumed`` (B, N) bool
        (consumed items get -inf)."""
        u = self.utilities(states).double()
        if consumed is not None:
            u = u.masked_fill(torch.as_tensor(consumed, dtype=torch.bool), float("-inf"))
        return torch.log_softmax(u, dim=1)

    def score_histories(self, histories, *, exclude_seen: bool = True) -> torch.Tensor:
        """Public scoring of one's own data: (B, N) float64 log-probabilities of each user's next item given
        each (B, L) history (PAD = -1), with the items in the history excluded (-inf) when ``exclude_seen``."""
        h = torch.as_tensor(np.asarray(histories) if not isinstance(histories, torch.Tensor) else histories)
        h = h.to(torch.int64)
        states = self.states(h)
        consumed = None
        if exclude_seen:
            consumed = torch.zeros(h.shape[0], self.num_items, dtype=torch.bool)
            rows, cols = torch.nonzero(h >= 0, as_tuple=True)
            consumed[rows, h[rows, cols]] = True
        return self.next_item_log_probs(states, consumed)

    def evaluate(self, split: LeaveOneOut, which: str = "test", ks=(10,), batch_size: int = 512) -> dict[str, float]:
        """HR/NDCG/MRR@K of the real held-out `which` item (full catalog, every item of the user's prefix
        excluded, the project's metric code) and ``log_likelihood``: the mean log P(real next item), the choice
        over the whole unconsumed catalog."""
        users = split.eval_users
        h = split.histories
        ends = split.prefix_end(which)[users]
        targets = split.target(which)[users]
        windows, _ = last_windows(h.items, h.offsets[users], ends, self.max_len)
        offsets, ids = gather_csr(h.items, h.offsets[users], ends)
        states = (
            torch.cat([self.states(windows[b : b + batch_size]) for b in range(0, len(users), batch_size)])
            if len(users)
            else torch.zeros(0, self.encoder.dim)
        )
        out = evaluate_ranking(
            states,
            self._items,
            torch.from_numpy(targets),
            ks=ks,
            bias=self.effective_bias(),
            exclude_offsets=torch.from_numpy(offsets),
            exclude_ids=torch.from_numpy(ids),
        )
        # the ranking above is of <q, e> + w b; beta only sharpens the probabilities, not the order
        total = 0.0
        for b0 in range(0, len(users), batch_size):
            b1 = min(b0 + batch_size, len(users))
            consumed = _csr_mask(offsets[b0 : b1 + 1] - offsets[b0], ids[offsets[b0] : offsets[b1]], self.num_items)
            logp = self.next_item_log_probs(states[b0:b1], consumed)
            total += float(logp[torch.arange(b1 - b0), torch.from_numpy(targets[b0:b1])].sum())
        out["log_likelihood"] = total / max(len(users), 1)
        return out


def _csr_mask(offsets: np.ndarray, ids: np.ndarray, num_items: int) -> torch.Tensor:
    """(R, N) bool: row r is True at ids[offsets[r]:offsets[r+1]]."""
    rows = np.repeat(np.arange(offsets.size - 1), np.diff(offsets))
    mask = torch.zeros(offsets.size - 1, num_items, dtype=torch.bool)
    mask[torch.from_numpy(rows), torch.from_numpy(np.asarray(ids, dtype=np.int64))] = True
    return mask


def popularity_log_likelihood(split: LeaveOneOut, which: str = "test") -> float:
    """Mean log P(real held-out item) under the popularity-only choice model: P(j) ∝ (train count of j + 1)
    over the items not in the user's prefix (the same masking as ``ResponseModel.evaluate``)."""
    counts = item_counts(train_histories(split)).astype(np.float64) + 1.0
    users = split.eval_users
    h = split.histories
    ends = split.prefix_end(which)[users]
    offsets, ids = gather_csr(h.items, h.offsets[users], ends)
    rows = np.repeat(np.arange(users.size), np.diff(offsets))
    seen = np.zeros((users.size, counts.size), bool)
    seen[rows, ids] = True
    mass = np.where(seen, 0.0, counts[None, :]).sum(1)
    targets = split.target(which)[users]
    return float(np.mean(np.log(counts[targets] / mass))) if users.size else float("nan")


def train_histories(split: LeaveOneOut) -> Histories:
    """The training prefixes of a split as Histories of their own (valid and test items dropped)."""
    h = split.histories
    starts = h.offsets[:-1]
    offsets, items = gather_csr(h.items, starts, split.train_end)
    _, stamps = gather_csr(h.timestamps, starts, split.train_end)
    return Histories(offsets, items, stamps, h.num_items)


def item_counts(histories: Histories) -> np.ndarray:
    """(N,) int64 events per item."""
    return np.bincount(histories.items, minlength=histories.num_items).astype(np.int64)


def train_only_split(split: LeaveOneOut) -> LeaveOneOut:
    """A split over the TRAIN prefixes only, for fitting without leakage: each user's last train item is the
    early-stopping target (users with >= 3 train items; the others train on all of theirs). Its "test" target
    is the same item, so nothing outside the training prefixes is ever read."""
    th = train_histories(split)
    starts, ends = th.offsets[:-1], th.offsets[1:]
    held = (ends - starts) >= 3
    train_end = np.where(held, ends - 1, ends).astype(np.int64)
    target = np.where(held, th.items[np.maximum(ends - 1, 0)] if th.items.size else PAD_ID, PAD_ID).astype(np.int64)
    return LeaveOneOut(th, train_end, target, target.copy())


RESPONSE_MODEL_EPOCHS = 8
"""epochs of the default response model (benchmarks/RESULTS.md, "Simulator validation": its held-out accuracy
at this budget)"""


def response_model_config(quick: bool = False, seed: int = 1):
    """The trainer settings of the response model: the large model's architecture and defaults, its own seed;
    ``quick`` is a small, few-second version for tests and --quick runs."""
    from recengine.train import SASRecConfig

    inf = float("inf")  # budgets in epochs, not seconds: the fitted simulator does not depend on the machine's load
    if quick:
        return SASRecConfig(dim=32, num_layers=1, max_epochs=2, patience=2, max_seconds=inf, seed=seed)
    return SASRecConfig(max_epochs=RESPONSE_MODEL_EPOCHS, max_seconds=inf, patience=5, seed=seed)


def fit_response_model(
    data,
    split: LeaveOneOut | None = None,
    config=None,
    *,
    quick: bool = False,
    seed: int = 1,
    beta: float = 1.0,
    popularity_weight: float = 1.0,
) -> tuple[ResponseModel, dict]:
    """Train a ResponseModel on the train prefixes of ``split`` (default: leave-one-out of ``data``).

    ``config`` is a ``SASRecConfig`` (default ``response_model_config(quick, seed)``). Returns the model and
    {"epochs", "best_epoch", "holdout": metrics on the last train item, "stopped", "train_seconds", "seed"}.
    """
    from recengine.train import train_sasrec

    split = split if split is not None else _split_of(data)
    cfg = config or response_model_config(quick, seed)
    fit_split = train_only_split(split)
    with torch.random.fork_rng(devices=[]):  # the trainer seeds the global generator; leave the caller's alone
        result = train_sasrec(data, cfg, split=fit_split, progress=False, log=lambda *a, **k: None)
    model = result.model
    info = {
        "epochs": len(result.history),
        "best_epoch": result.best_epoch,
        "holdout": result.best_valid,
        "stopped": result.stopped,
        "train_seconds": result.train_seconds,
        "seed": cfg.seed,
    }
    return ResponseModel(model.encoder, model.head.bias.detach().clone(), beta, popularity_weight), info


def _split_of(data) -> LeaveOneOut:
    from recengine.data import leave_one_out

    return leave_one_out(histories_of(data))
