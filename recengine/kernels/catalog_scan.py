"""The parts every Triton catalog scan shares (the policy family's and the quantized tables' top-k).

A catalog scan (recengine.kernels.policy, recengine.kernels.quantized_tables) gives each program BLOCK_B rows
of Q and one split of the catalog; each keeps a running top-k per row in registers (`topk_merge`), and the host
merges the splits' candidates (`merge_topk`). The launch helpers size the feature block (`block_d`), the
number of catalog splits (`num_splits`) and pass the per-row exclusion lists (`exclusion_args`).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def topk_merge(vals, ids, aux, cand, cand_ids, cand_aux, k, K: tl.constexpr):
    """Best k of (kept entries, tile candidates) per row, value descending, ties by lower id."""
    BIG: tl.constexpr = 2147483647
    kcol = tl.arange(0, K)[None, :]
    new_v = tl.full(vals.shape, float("-inf"), tl.float32)
    new_i = tl.full(vals.shape, BIG, tl.int32)
    new_a = tl.zeros(vals.shape, tl.float32)
    for t in range(0, k):
        best = tl.maximum(tl.max(cand, axis=1), tl.max(vals, axis=1))
        ok = best > float("-inf")
        i_c = tl.min(tl.where(cand == best[:, None], cand_ids, BIG), axis=1)
        i_k = tl.min(tl.where(vals == best[:, None], ids, BIG), axis=1)
        pick = tl.where(ok, tl.minimum(i_c, i_k), BIG)
        hit_c = cand_ids == pick[:, None]
        hit_k = ids == pick[:, None]
        a = tl.sum(tl.where(hit_c, cand_aux, 0.0), axis=1) + tl.sum(tl.where(hit_k, aux, 0.0), axis=1)
        new_v = tl.where(kcol == t, best[:, None], new_v)
        new_i = tl.where(kcol == t, pick[:, None], new_i)
        new_a = tl.where(kcol == t, a[:, None], new_a)
        cand = tl.where(hit_c, float("-inf"), cand)
        vals = tl.where(hit_k, float("-inf"), vals)
    return new_v, new_i, new_a


def block_d(D: int) -> int:
    """The feature block of a D-wide row: the next power of two, at least 16 (tl.dot's smallest)."""
    return max(16, triton.next_power_of_2(D))


def exclusion_args(exclude_offsets, exclude_ids, device):
    """(offsets, ids int64, longest list, any exclusion) for a scan kernel; dummies when there is no list."""
    if exclude_offsets is None:
        dummy = torch.zeros(2, dtype=torch.int64, device=device)
        return dummy, dummy, 0, False
    counts = exclude_offsets[1:] - exclude_offsets[:-1]
    max_cnt = int(counts.max()) if counts.numel() else 0
    return exclude_offsets, exclude_ids.to(torch.int64).contiguous(), max_cnt, max_cnt > 0


def num_splits(B: int, N: int, block_b: int, block_n: int) -> int:
    """How many catalog splits a scan of B rows over N items runs as (the second grid axis)."""
    # enough programs to fill a GPU (about 4 per SM of a large one), never less than 4 tiles per split
    row_blocks = triton.cdiv(B, block_b)
    want = triton.cdiv(512, row_blocks)
    return int(max(1, min(want, triton.cdiv(N, 4 * block_n))))


def merge_topk(out_v, out_i, out_a, k):
    """Best k over the splits' candidates: value descending, ties by the lower id."""
    S, B, K = out_v.shape
    v = out_v.permute(1, 0, 2).reshape(B, S * K)
    i = out_i.permute(1, 0, 2).reshape(B, S * K).to(torch.int64)
    a = out_a.permute(1, 0, 2).reshape(B, S * K)
    order = torch.argsort(i, dim=1, stable=True)  # by id, then stably by value: ties keep id order
    v, i, a = v.gather(1, order), i.gather(1, order), a.gather(1, order)
    order = torch.argsort(v, dim=1, descending=True, stable=True)[:, :k]
    return v.gather(1, order), i.gather(1, order), a.gather(1, order)
