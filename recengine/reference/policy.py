"""Catalog softmax-policy scoring, the plain-PyTorch truth (materialises the B x N logits).

For user states Q (B, D) and item embeddings E (N, D), float32, the policy logits are

    logits[b, a] = (Q[b] . E[a] + bias[a]) / temperature

with items in a user's exclusion list (CSR: exclude_offsets (B+1,), exclude_ids) set to -inf, so
they never score, are never drawn and carry no probability. The softmax over a row is the policy
pi(a | s_b). Ids returned are int64; ties in a score are broken by the lower item id.

Sampling uses counter-based randomness: the uniform for (seed, row, item) is a hash of the three
(`gumbel_noise`), the same integer function in the C++ and Triton kernels, so the same seed gives
the same draw on every backend. Gumbel-top-k over `logits + gumbel` draws k distinct items without
replacement from the softmax policy.
"""

from __future__ import annotations

import math

import torch

from recengine.ops.counter_hash import MASK32, MIX_MUL1, MIX_MUL2, seed_key

#: uniforms are (23-bit integer + 0.5) / 2^23, so u lies in [2^-24, 1 - 2^-24] and is exact in float32
UNIFORM_BITS = 23
#: the largest Gumbel value the hash can produce: -log(-log(1 - 2^-24)) = 16.64 (kernels skip the noise
#: of items whose logit + this bound cannot reach the current k-th key)
GUMBEL_MAX = -math.log(-math.log1p(-(2.0**-24)))


# ------------------------------------------------------------------------------- counter-based noise
def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    # (x * c) mod 2^32 on int64 holding values < 2^32, split in 16-bit halves so nothing overflows int64
    lo = x & 0xFFFF
    hi = x >> 16
    return (lo * c + (((hi * c) & 0xFFFF) << 16)) & MASK32


def mix32(x: torch.Tensor) -> torch.Tensor:
    """The same mixing function elementwise on an int64 tensor of values in [0, 2^32)."""
    x = x ^ (x >> 16)
    x = _mul32(x, MIX_MUL1)
    x = x ^ (x >> 15)
    x = _mul32(x, MIX_MUL2)
    return x ^ (x >> 16)


def hash_uniform(seed: int, rows: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """Uniform in (0, 1), float32, for each (row, item) pair (broadcast), a pure function of (seed, row, item).

    sk = seed_key(seed); rk = mix32(sk ^ mix32(row)); h = mix32(mix32(item ^ sk) ^ rk)
    u  = ((h >> 9) + 0.5) / 2^23
    """
    sk = seed_key(seed)
    rows = rows.to(torch.int64) & MASK32
    items = items.to(torch.int64) & MASK32
    rk = mix32(mix32(rows) ^ sk)
    h = mix32(mix32(items ^ sk) ^ rk)
    return (((h >> (32 - UNIFORM_BITS)).to(torch.float64) + 0.5) * 2.0**-UNIFORM_BITS).to(torch.float32)


def gumbel_noise(seed: int, num_rows: int, num_items: int, device=None) -> torch.Tensor:
    """Standard Gumbel noise (num_rows, num_items), float32: -log(-log(u)) of the hashed uniforms."""
    out = torch.empty(num_rows, num_items, dtype=torch.float32, device=device)
    items = torch.arange(num_items, device=device).unsqueeze(0)
    # a few rows at a time: the int64 hash temporaries of all B x N pairs would be several GiB
    step = max(1, (1 << 22) // max(num_items, 1))
    for r0 in range(0, num_rows, step):
        rows = torch.arange(r0, min(r0 + step, num_rows), device=device).unsqueeze(1)
        u = hash_uniform(seed, rows, items)
        out[r0 : r0 + rows.shape[0]] = -torch.log(-torch.log(u))
    return out


# ------------------------------------------------------------------------------------------ logits
def exclusion_mask(num_rows: int, num_items: int, exclude_offsets, exclude_ids, device=None) -> torch.Tensor | None:
    """Boolean (B, N) mask of excluded (row, item) pairs from the CSR lists, or None without a list."""
    if exclude_offsets is None:
        return None
    counts = (exclude_offsets[1:] - exclude_offsets[:-1]).to(torch.int64)
    rows = torch.repeat_interleave(torch.arange(num_rows, device=device), counts)
    mask = torch.zeros(num_rows, num_items, dtype=torch.bool, device=device)
    mask[rows, exclude_ids.to(torch.int64)] = True
    return mask


def catalog_logits(Q, E, *, bias=None, temperature=1.0, exclude_offsets=None, exclude_ids=None) -> torch.Tensor:
    """(Q @ E.T + bias) / temperature with excluded items at -inf: the full (B, N) matrix."""
    logits = Q @ E.T
    if bias is not None:
        logits = logits + bias
    if temperature != 1.0:
        logits = logits / temperature
    mask = exclusion_mask(Q.shape[0], E.shape[0], exclude_offsets, exclude_ids, device=Q.device)
    if mask is not None:
        logits = logits.masked_fill(mask, float("-inf"))
    return logits


def topk_lower_id(values: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Row-wise top-k of `values`, sorted descending, ties broken by the lower column index.

    torch.topk's order among equal values is unspecified; rows where a tie could matter (the k-th
    value occurs outside the top-k as well, or twice inside it) are redone with a stable sort.
    """
    vals, ids = torch.topk(values, k, dim=1, largest=True, sorted=True)
    kth = vals[:, -1:]
    ties_total = (values == kth).sum(1)
    ties_in = (vals == kth).sum(1)
    dup_inside = (vals[:, 1:] == vals[:, :-1]).any(1) if k > 1 else torch.zeros_like(ties_in, dtype=torch.bool)
    redo = ((ties_total > ties_in) | dup_inside).nonzero().flatten()
    if redo.numel():
        v, i = torch.sort(values[redo], dim=1, descending=True, stable=True)
        vals[redo] = v[:, :k]
        ids[redo] = i[:, :k]
    return vals, ids


# ------------------------------------------------------------------------------------- the four ops
def catalog_topk_reference(Q, E, k, *, bias=None, temperature=1.0, exclude_offsets=None, exclude_ids=None):
    """(scores (B, k), ids (B, k) int64): the k largest logits per row, descending, ties by lower id."""
    logits = catalog_logits(
        Q, E, bias=bias, temperature=temperature, exclude_offsets=exclude_offsets, exclude_ids=exclude_ids
    )
    return topk_lower_id(logits, k)


def catalog_sample_reference(Q, E, k, seed, *, bias=None, temperature=1.0, exclude_offsets=None, exclude_ids=None):
    """(ids (B, k) int64, log_probs (B, k)): k distinct items per row drawn from softmax(logits) without
    replacement by Gumbel-top-k with the hashed noise, in decreasing order of their perturbed key, and
    each drawn item's log pi(a|s) under the full softmax."""
    logits = catalog_logits(
        Q, E, bias=bias, temperature=temperature, exclude_offsets=exclude_offsets, exclude_ids=exclude_ids
    )
    keys = logits + gumbel_noise(seed, logits.shape[0], logits.shape[1], device=logits.device)
    _, ids = topk_lower_id(keys, k)
    log_probs = torch.log_softmax(logits, dim=1).gather(1, ids)
    return ids, log_probs


def catalog_logsumexp_reference(Q, E, *, bias=None, temperature=1.0, exclude_offsets=None, exclude_ids=None):
    """(B,): log sum_a exp(logits[b, a]) over the non-excluded items."""
    logits = catalog_logits(
        Q, E, bias=bias, temperature=temperature, exclude_offsets=exclude_offsets, exclude_ids=exclude_ids
    )
    return torch.logsumexp(logits, dim=1)


def catalog_cross_entropy_reference(
    Q, E, target, *, bias=None, temperature=1.0, exclude_offsets=None, exclude_ids=None, reduction="mean"
):
    """-log pi(target | s) per row, reduced by "mean" | "sum" | "none"; differentiable by autograd."""
    logits = catalog_logits(
        Q, E, bias=bias, temperature=temperature, exclude_offsets=exclude_offsets, exclude_ids=exclude_ids
    )
    return torch.nn.functional.cross_entropy(logits, target.to(torch.int64), reduction=reduction)


# --------------------------------------------------- samplers with torch's RNG (benchmark baselines)
def catalog_sample_torch_rng_reference(
    Q, E, k, *, bias=None, temperature=1.0, exclude_offsets=None, exclude_ids=None, method="gumbel", generator=None
):
    """The usual ways to draw k items without replacement from the full logits with torch's RNG (same
    distribution as catalog_sample, different random stream): "gumbel" (logits + Gumbel noise, top-k)
    or "multinomial" (log_softmax, then torch.multinomial). Returns (ids, log_probs)."""
    logits = catalog_logits(
        Q, E, bias=bias, temperature=temperature, exclude_offsets=exclude_offsets, exclude_ids=exclude_ids
    )
    log_p = torch.log_softmax(logits, dim=1)
    if method == "gumbel":
        noise = torch.empty_like(logits).exponential_(generator=generator).log_().neg_()
        ids = torch.topk(logits + noise, k, dim=1).indices
    elif method == "multinomial":
        ids = torch.multinomial(log_p.exp(), k, replacement=False, generator=generator)
    else:
        raise ValueError(f"method: expected 'gumbel' or 'multinomial', got {method!r}")
    return ids, log_p.gather(1, ids)
