"""Cold-start evaluation: per-user HR@K / NDCG@K of a model's test ranking, apart for cold and warm targets.

Each evaluated user has one test event (``recengine.data.cold_start``), ranked over the full catalog with the
user's seen items excluded. The per-user values are kept (not only their means) so two models measured on the
same users can be compared by paired differences (``recengine.eval.stats.paired_diff``).
"""

from __future__ import annotations

import numpy as np
import torch

from recengine.data.cold_start import ColdStartSplit
from recengine.data.sequences import last_windows
from recengine.eval.metrics import rank_targets
from recengine.eval.offline import eval_inputs
from recengine.eval.stats import mean_ci, paired_diff
from recengine.nn.modes import eval_mode
from recengine.nn.sequence_recommender import SequenceRecommender


def per_user_metrics(
    model: SequenceRecommender, split: ColdStartSplit, k: int = 10, batch_size: int = 512
) -> dict[str, np.ndarray]:
    """{"users", "cold", f"hr@{k}", f"ndcg@{k}"}: one entry per evaluated user of ``split.test`` (test target)."""
    users, targets, exc_off, exc_ids = eval_inputs(split.test, "test")
    h = split.test.histories
    windows, _ = last_windows(h.items, h.offsets[users], split.test.prefix_end("test")[users], model.encoder.max_len)
    with eval_mode(model), torch.no_grad():
        states = [
            model.user_states(
                torch.from_numpy(windows[b0 : b0 + batch_size]), torch.from_numpy(users[b0 : b0 + batch_size])
            )
            for b0 in range(0, len(users), batch_size)
        ]
        q = torch.cat(states) if states else torch.zeros(0, model.encoder.dim)
        ranks = rank_targets(
            q,
            model.encoder.item_embeddings(),
            targets,
            k=k,
            bias=model.head.bias,
            exclude_offsets=exc_off,
            exclude_ids=exc_ids,
        ).numpy()
    hit = ranks < k
    return {
        "users": users,
        "cold": split.cold_target[users],
        f"hr@{k}": hit.astype(np.float64),
        f"ndcg@{k}": np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0),
    }


def summarize(values: dict[str, np.ndarray], metrics: tuple[str, ...] = ("hr@10", "ndcg@10")) -> dict:
    """{"cold": {metric: mean_ci}, "warm": {...}} of per_user_metrics' output (an empty group gives None)."""
    out = {}
    for group, mask in (("cold", values["cold"]), ("warm", ~values["cold"])):
        out[group] = {m: mean_ci(values[m][mask]) if mask.any() else None for m in metrics}
    return out


def paired_summary(
    values: dict[str, np.ndarray], baseline: dict[str, np.ndarray], metrics: tuple[str, ...] = ("hr@10", "ndcg@10")
) -> dict:
    """{"cold": {metric: paired_diff}, "warm": {...}}: `values` minus `baseline`, user by user (same users)."""
    if not np.array_equal(values["users"], baseline["users"]):
        raise ValueError("values and baseline: must be measured on the same users, in the same order")
    out = {}
    for group, mask in (("cold", values["cold"]), ("warm", ~values["cold"])):
        out[group] = {m: paired_diff(values[m][mask], baseline[m][mask]) if mask.any() else None for m in metrics}
    return out
