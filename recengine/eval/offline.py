"""Offline evaluation on the leave-one-out split: a model's full-ranking HR/NDCG/MRR@K on the held-out items.

Every evaluated user's seen items (the prefix before the target) are excluded from the ranking by default; with
``exclude_seen=False`` the whole catalog is ranked, seen items included (papers differ: the SASRec / BERT4Rec
line of work ranks every item, RecBole excludes the history). The ranking itself is
`recengine.eval.metrics.evaluate_ranking`. These helpers turn a split and a model into its inputs.

    evaluate_model(model, split, "test")     # the large model (a SequenceRecommender, or a ScoreEnsemble of them)
    evaluate_pop(split, "test")              # most-popular, by training count
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from recengine.data.exclusion import csr_tensors
from recengine.data.sequences import LeaveOneOut, gather_csr, last_windows
from recengine.eval.metrics import evaluate_ranking
from recengine.nn.modes import eval_mode
from recengine.nn.sequence_recommender import SequenceRecommender


def eval_inputs(
    split: LeaveOneOut, which: str, exclude_seen: bool = True
) -> tuple[np.ndarray, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(users, targets, exclude_offsets, exclude_ids) of the evaluated users for the `which` target
    ("valid" or "test"): the exclusion list is each user's items before that target (empty lists when not
    `exclude_seen`)."""
    users = split.eval_users
    h = split.histories
    ends = split.prefix_end(which)[users]
    starts = h.offsets[users] if exclude_seen else ends
    offsets, ids = gather_csr(h.items, starts, ends)
    exclude_offsets, exclude_ids = csr_tensors(offsets, ids)
    return users, torch.from_numpy(split.target(which)[users]), exclude_offsets, exclude_ids


def train_item_counts(split: LeaveOneOut) -> np.ndarray:
    """How often each item occurs in the training prefixes (N,) int64."""
    h = split.histories
    _, ids = gather_csr(h.items, h.offsets[:-1], split.train_end)
    return np.bincount(ids, minlength=h.num_items).astype(np.int64)


def evaluate_pop(
    split: LeaveOneOut, which: str = "test", ks: Sequence[int] = (10,), *, exclude_seen: bool = True
) -> dict[str, float]:
    """Most-popular: every user gets the items ranked by training count (Q = 1, E = counts)."""
    users, targets, exc_off, exc_ids = eval_inputs(split, which, exclude_seen)
    counts = torch.from_numpy(train_item_counts(split)).float().unsqueeze(1)
    Q = torch.ones(len(users), 1)
    return evaluate_ranking(Q, counts, targets, ks=ks, exclude_offsets=exc_off, exclude_ids=exc_ids)


def user_states_for(model, split: LeaveOneOut, which: str, batch_size: int = 512) -> torch.Tensor:
    """(U, D) the states of the evaluated users (``split.eval_users``) after the items before their `which` target
    ("valid" or "test"), in evaluation mode (the model is left in the mode it was in)."""
    users = split.eval_users
    h = split.histories
    windows, _ = last_windows(h.items, h.offsets[users], split.prefix_end(which)[users], model.window_length)
    with eval_mode(model), torch.no_grad():
        states = [
            model.user_states(
                torch.from_numpy(windows[b0 : b0 + batch_size]), torch.from_numpy(users[b0 : b0 + batch_size])
            )
            for b0 in range(0, len(users), batch_size)
        ]
        return torch.cat(states) if states else torch.zeros(0, model.scoring_table()[0].shape[1])


def rank_states(
    model, states: torch.Tensor, split: LeaveOneOut, which: str, ks: Sequence[int] = (10,), *, exclude_seen: bool = True
) -> dict[str, float]:
    """HR/NDCG/MRR@K of `states` (from `user_states_for` with the same `which`) against the model's item table."""
    _, targets, exc_off, exc_ids = eval_inputs(split, which, exclude_seen)
    with eval_mode(model), torch.no_grad():
        table, bias = model.scoring_table()
        return evaluate_ranking(states, table, targets, ks=ks, bias=bias, exclude_offsets=exc_off, exclude_ids=exc_ids)


def evaluate_model(
    model: SequenceRecommender,
    split: LeaveOneOut,
    which: str = "test",
    ks: Sequence[int] = (10,),
    batch_size: int = 512,
    *,
    exclude_seen: bool = True,
) -> dict[str, float]:
    """Full-ranking HR/NDCG/MRR@K of the `which` target ("valid" or "test"), seen items excluded unless not
    `exclude_seen`; the model is read in evaluation mode and left in the mode it was in. Any model with
    ``window_length``, ``user_states`` and ``scoring_table`` (a SequenceRecommender, a ScoreEnsemble)."""
    states = user_states_for(model, split, which, batch_size)
    return rank_states(model, states, split, which, ks, exclude_seen=exclude_seen)
