"""Cold-start evaluation: per-user HR@K / NDCG@K of a model, apart for cold and warm events.

Every event is ranked over the full catalog from the user's full history before it, that history's items
excluded (``recengine.data.cold_start``). Warm: the user's test event when its item is warm (one per user). Cold:
every event of the user on a cold item, averaged per user, so each user counts once however many cold events they
have and users stay the independent unit of the intervals. The per-user values are kept (not only their means) so
two models measured on the same users can be compared by paired differences (``recengine.eval.stats.paired_diff``).
"""

from __future__ import annotations

import numpy as np
import torch

from recengine.data.cold_start import ColdStartSplit
from recengine.data.exclusion import csr_tensors
from recengine.data.sequences import gather_csr, last_windows
from recengine.eval.metrics import HR_AT_10, NDCG_AT_10, metric_key, rank_targets
from recengine.eval.stats import mean_ci, paired_diff
from recengine.nn.modes import eval_mode
from recengine.nn.sequence_recommender import SequenceRecommender

GROUPS = ("cold", "warm")


def _ranks(model: SequenceRecommender, split: ColdStartSplit, users, ends, k: int, batch_size: int) -> np.ndarray:
    """0-based rank of each event ``items[ends[r]]`` of ``users[r]`` among the items not in its prefix."""
    h = split.test.histories
    starts = h.offsets[users]
    windows, _ = last_windows(h.items, starts, ends, model.encoder.max_len)
    exc_off, exc_ids = csr_tensors(*gather_csr(h.items, starts, ends))
    with eval_mode(model), torch.no_grad():
        states = [
            model.user_states(
                torch.from_numpy(windows[b0 : b0 + batch_size]), torch.from_numpy(users[b0 : b0 + batch_size])
            )
            for b0 in range(0, len(users), batch_size)
        ]
        q = torch.cat(states) if states else torch.zeros(0, model.encoder.dim)
        return rank_targets(
            q,
            model.encoder.item_embeddings(),
            torch.from_numpy(h.items[ends]),
            k=k,
            bias=model.head.bias,
            exclude_offsets=exc_off,
            exclude_ids=exc_ids,
        ).numpy()


def _per_user(users: np.ndarray, ranks: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """{"users", "events", f"hr@{k}", f"ndcg@{k}"}: the mean over each user's events (users sorted)."""
    hit = ranks < k
    ndcg = np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0)
    unique, index, events = np.unique(users, return_inverse=True, return_counts=True)
    mean = lambda x: np.bincount(index, weights=x, minlength=unique.size) / np.maximum(events, 1)  # noqa: E731
    return {
        "users": unique,
        "events": events,
        metric_key("hr", k): mean(hit.astype(np.float64)),
        metric_key("ndcg", k): mean(ndcg),
    }


def per_user_metrics(
    model: SequenceRecommender, split: ColdStartSplit, k: int = 10, batch_size: int = 512
) -> dict[str, dict[str, np.ndarray]]:
    """{"cold": ..., "warm": ...}, each {"users", "events", f"hr@{k}", f"ndcg@{k}"} with one entry per user:
    warm, the users whose test target is warm (one event each); cold, the users with an event on a cold item
    (``split.cold_events``), the mean over those events."""
    warm_users = split.eval_users[~split.cold_target[split.eval_users]]
    warm_ends = split.test.prefix_end("test")[warm_users]
    cold_users, cold_ends = split.cold_events
    return {
        "cold": _per_user(cold_users, _ranks(model, split, cold_users, cold_ends, k, batch_size), k),
        "warm": _per_user(warm_users, _ranks(model, split, warm_users, warm_ends, k, batch_size), k),
    }


def summarize(values: dict, metrics: tuple[str, ...] = (HR_AT_10, NDCG_AT_10)) -> dict:
    """{"cold": {metric: mean_ci}, "warm": {...}} of per_user_metrics' output (a group without users gives None)."""
    return {g: {m: mean_ci(values[g][m]) if values[g]["users"].size else None for m in metrics} for g in GROUPS}


def paired_summary(values: dict, baseline: dict, metrics: tuple[str, ...] = (HR_AT_10, NDCG_AT_10)) -> dict:
    """{"cold": {metric: paired_diff}, "warm": {...}}: `values` minus `baseline`, user by user (same users)."""
    for g in GROUPS:
        if not np.array_equal(values[g]["users"], baseline[g]["users"]):
            raise ValueError(f"values and baseline: must be measured on the same {g} users, in the same order")
    return {
        g: {m: paired_diff(values[g][m], baseline[g][m]) if values[g]["users"].size else None for m in metrics}
        for g in GROUPS
    }
