"""Full-ranking top-K metrics: HR@K, NDCG@K, MRR@K over ALL items, the user's seen items excluded.

The protocol (as RecBole's full-sort evaluation): for each user one held-out target item; every item in the
catalog is scored, the items the user has already interacted with are excluded from the ranking (a CSR
exclusion list), and the target's rank r (0 = best) among the rest gives

    HR@K   = 1[r < K]
    NDCG@K = 1[r < K] / log2(r + 2)          (one relevant item, so IDCG = 1)
    MRR@K  = 1[r < K] / (r + 1)

averaged over users. Ranking goes through ``recengine.ops.catalog_topk`` (ties broken by the lower item id), so
no (B, N) score matrix is built.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from recengine import ops

RANKING_METRICS = ("hr", "ndcg", "mrr")
"""the ranking metrics `metrics_from_ranks` reports at each cut-off K, under the keys `metric_key(name, K)`"""


def metric_key(name: str, k: int) -> str:
    """The key of ranking metric `name` (one of RANKING_METRICS) at cut-off `k` in every metrics dict the project
    builds and reads: "hr@10", "ndcg@10", "mrr@10"."""
    return f"{name}@{k}"


HR_AT_10 = metric_key("hr", 10)
NDCG_AT_10 = metric_key("ndcg", 10)
"""the metric validation selects on (early stopping, the best epoch)"""
MRR_AT_10 = metric_key("mrr", 10)


def target_ranks(topk_ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(B,) int64: the position of each target in its row of `topk_ids` (B, k), or k where it is absent."""
    if topk_ids.dim() != 2 or targets.shape != (topk_ids.shape[0],):
        raise ValueError(
            f"expected topk_ids (B, k) and targets (B,), got {tuple(topk_ids.shape)}, {tuple(targets.shape)}"
        )
    k = topk_ids.shape[1]
    hits = topk_ids == targets.to(topk_ids.dtype).unsqueeze(1)
    # first hit position; k when none (argmax of an all-False row is 0, so mask it)
    first = hits.to(torch.int64).argmax(1)
    return torch.where(hits.any(1), first, torch.full_like(first, k))


def metrics_from_ranks(ranks: torch.Tensor, ks: Sequence[int] = (10,)) -> dict[str, float]:
    """{"hr@K", "ndcg@K", "mrr@K"} averaged over rows, from 0-based target ranks (>= K: a miss)."""
    ranks = ranks.to(torch.float64)
    out: dict[str, float] = {}
    n = max(ranks.numel(), 1)
    for k in ks:
        hit = ranks < k
        out[metric_key("hr", k)] = float(hit.sum()) / n
        ndcg = torch.where(hit, 1.0 / torch.log2(ranks + 2.0), torch.zeros_like(ranks))
        out[metric_key("ndcg", k)] = float(ndcg.sum()) / n
        out[metric_key("mrr", k)] = float(torch.where(hit, 1.0 / (ranks + 1.0), torch.zeros_like(ranks)).sum()) / n
    return out


def rank_targets(
    Q: torch.Tensor,
    E: torch.Tensor,
    targets,
    *,
    k: int,
    bias: torch.Tensor | None = None,
    exclude_offsets=None,
    exclude_ids=None,
    batch_size: int = 1024,
) -> torch.Tensor:
    """(B,) 0-based rank of each target among all non-excluded items (k where it is not in the top k).

    Q (B, D) user states, E (N, D) item table, optional item bias (N,); exclusion as CSR (B+1,) + ids."""
    targets = torch.as_tensor(targets, dtype=torch.int64)
    if Q.dim() != 2 or targets.shape != (Q.shape[0],):
        raise ValueError(f"expected Q (B, D) and targets (B,), got {tuple(Q.shape)}, {tuple(targets.shape)}")
    if targets.numel() and (targets.min() < 0 or targets.max() >= E.shape[0]):
        raise IndexError(f"targets: ids must lie in [0, {E.shape[0]})")
    b, n = Q.shape[0], E.shape[0]
    k = min(k, n)
    topk = ops.catalog_topk
    ranks = torch.full((b,), k, dtype=torch.int64)
    off = ids = None
    allowed = torch.full((b,), n, dtype=torch.int64)
    if exclude_offsets is not None:
        off = torch.as_tensor(exclude_offsets, dtype=torch.int64)
        ids = torch.as_tensor(exclude_ids, dtype=torch.int64)
        if off.shape != (b + 1,):
            raise ValueError(f"exclude_offsets: expected shape ({b + 1},), got {tuple(off.shape)}")
        rows = torch.repeat_interleave(torch.arange(b), off[1:] - off[:-1])
        distinct = torch.unique(rows * n + ids) // n  # an item listed twice for a row is excluded once
        allowed -= torch.bincount(distinct, minlength=b)

    def run(sel: torch.Tensor, kk: int) -> None:
        kw = {}
        if off is not None:
            counts = off[sel + 1] - off[sel]
            take = torch.repeat_interleave(off[sel], counts) + (
                torch.arange(int(counts.sum())) - torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
            )
            kw = dict(
                exclude_offsets=torch.cat([torch.zeros(1, dtype=torch.int64), counts.cumsum(0)]),
                exclude_ids=ids[take].contiguous(),
            )
        _, top = topk(Q[sel].contiguous(), E, kk, bias=bias, **kw)
        ranks[sel] = target_ranks(top, targets[sel])

    with torch.no_grad():
        Q = Q.detach().contiguous().float()
        E = E.detach().contiguous().float()
        bias = None if bias is None else bias.detach().contiguous().float()
        full = torch.nonzero(allowed >= k).flatten()
        for b0 in range(0, full.numel(), batch_size):
            run(full[b0 : b0 + batch_size], k)
        # rows with fewer than k items left: rank among what is left (none left: a miss)
        for r in torch.nonzero((allowed < k) & (allowed > 0)).flatten():
            run(r.view(1), int(allowed[r]))
    return ranks


def evaluate_ranking(
    Q: torch.Tensor,
    E: torch.Tensor,
    targets,
    *,
    ks: Sequence[int] = (10,),
    bias: torch.Tensor | None = None,
    exclude_offsets=None,
    exclude_ids=None,
    batch_size: int = 1024,
) -> dict[str, float]:
    """HR/NDCG/MRR@K for every K in `ks`, full ranking of the catalog with the exclusion list masked."""
    ranks = rank_targets(
        Q,
        E,
        targets,
        k=max(ks),
        bias=bias,
        exclude_offsets=exclude_offsets,
        exclude_ids=exclude_ids,
        batch_size=batch_size,
    )
    return metrics_from_ranks(ranks, ks)
