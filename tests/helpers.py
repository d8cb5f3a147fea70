"""Shared test utilities: a failure-explaining allclose, the Triton test device, and the input builders the
op, kernel and bindings tests of each family share (one copy each)."""

from __future__ import annotations

import torch

from recengine.reference import policy as policy_reference

#: the device the Triton kernels are tested on: CUDA when present, else the CPU under TRITON_INTERPRET=1
TRITON_DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def assert_close(
    actual: torch.Tensor, expected: torch.Tensor, *, rtol: float = 1e-5, atol: float = 1e-6, name: str = "tensor"
) -> None:
    """allclose that says how many elements differ, the first few, and NaN/inf mismatches apart."""
    assert actual.shape == expected.shape, f"{name}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    a = actual.detach().to("cpu", torch.float64)
    e = expected.detach().to("cpu", torch.float64)
    nan_mismatch = torch.isnan(a) != torch.isnan(e)
    inf_mismatch = (torch.isinf(a) | torch.isinf(e)) & (a != e) & ~torch.isnan(a) & ~torch.isnan(e)
    finite = torch.isfinite(a) & torch.isfinite(e)
    bad = finite & ((a - e).abs() > atol + rtol * e.abs())
    msgs = []
    if nan_mismatch.any():
        msgs.append(f"{int(nan_mismatch.sum())} NaN mismatches at {nan_mismatch.nonzero()[:5].tolist()}")
    if inf_mismatch.any():
        msgs.append(f"{int(inf_mismatch.sum())} inf mismatches at {inf_mismatch.nonzero()[:5].tolist()}")
    if bad.any():
        idx = bad.nonzero()[:5]
        detail = ", ".join(f"{tuple(i.tolist())}: {a[tuple(i)]:.6g} vs {e[tuple(i)]:.6g}" for i in idx)
        msgs.append(
            f"{int(bad.sum())}/{a.numel()} elements differ (max abs diff "
            f"{(a - e)[finite].abs().max():.3g}); first: {detail}"
        )
    assert not msgs, f"{name}: " + "; ".join(msgs)


def make_catalog_case(B=19, N=301, D=24, *, seed=0, bias=True, excl=True, scale=1.0, ids_dtype=torch.int64):
    """Q (B, D), E (N, D) and the policy ops' keyword arguments: a bias, and exclusion lists with an empty row
    and a duplicated id."""
    g = torch.Generator().manual_seed(seed)
    Q = torch.randn(B, D, generator=g) * scale
    E = torch.randn(N, D, generator=g)
    kw = {}
    if bias:
        kw["bias"] = torch.randn(N, generator=g)
    if excl:
        counts = torch.randint(0, 9, (B,), generator=g)
        counts[0] = 0  # an empty list
        kw["exclude_offsets"] = torch.cat([torch.zeros(1, dtype=torch.int64), counts.cumsum(0)])
        ids = torch.randint(0, N, (int(counts.sum()),), generator=g)
        if ids.numel() > 1:
            ids[1] = ids[0]  # a duplicate
        kw["exclude_ids"] = ids.to(ids_dtype)
    return Q, E, kw


def valid_catalog_targets(B, N, kw, seed=0):
    """Random targets (B,) int64 that no row excludes."""
    g = torch.Generator().manual_seed(seed + 1)
    target = torch.randint(0, N, (B,), generator=g)
    mask = policy_reference.exclusion_mask(B, N, kw.get("exclude_offsets"), kw.get("exclude_ids"))
    if mask is not None:
        for b in range(B):
            while mask[b, target[b]]:
                target[b] = (target[b] + 1) % N
    return target


def make_td_batch(batch, seed, done_dtype=torch.bool, scale=3.0):
    """Random td_loss inputs (q_sa, next_q, reward, done, discount, weight), each (batch,)."""
    g = torch.Generator().manual_seed(seed)
    q_sa = torch.randn(batch, generator=g) * scale
    next_q = torch.randn(batch, generator=g) * scale
    rewards = torch.randn(batch, generator=g)
    dones = (torch.rand(batch, generator=g) < 0.3).to(done_dtype)
    discounts = torch.rand(batch, generator=g)
    weights = torch.rand(batch, generator=g)
    return q_sa, next_q, rewards, dones, discounts, weights


def make_bag_inputs(
    seed: int,
    rows: list[int],
    batch: int,
    dim: int,
    *,
    max_len: int = 5,
    id_dtype=torch.int64,
    psw: bool = False,
    empty_frac: float = 0.2,
    hot: bool = False,
):
    """Random table-major jagged input: some empty bags; `hot` draws most ids from a few rows (duplicates)."""
    g = torch.Generator().manual_seed(seed)
    num_tables = len(rows)
    table_offsets = torch.tensor([0] + rows, dtype=torch.int64).cumsum(0)
    weights = torch.randn(int(table_offsets[-1]), dim, generator=g)
    lengths = torch.randint(0, max_len + 1, (num_tables * batch,), generator=g)
    lengths[torch.rand(num_tables * batch, generator=g) < empty_frac] = 0
    offsets = torch.zeros(num_tables * batch + 1, dtype=torch.int64)
    offsets[1:] = lengths.cumsum(0)
    parts = []
    for j in range(num_tables * batch):
        n = int(lengths[j])
        r = rows[j // batch]
        top = min(r, 3) if hot else r
        parts.append(torch.randint(0, top, (n,), generator=g))
    ids = torch.cat(parts).to(id_dtype) if parts else torch.zeros(0, dtype=id_dtype)
    weights_psw = torch.rand(ids.numel(), generator=g) + 0.5 if psw else None
    return weights, table_offsets, ids, offsets, weights_psw


BAG_SHAPES = [  # (rows per table, batch, dim): one table, many, mixed sizes, single-row table, dims on every path
    ([7], 4, 8),
    ([20, 1, 13], 5, 64),
    ([3, 50, 9, 1, 17, 4], 3, 32),
    ([11, 6], 6, 5),
    ([30, 12], 4, 128),
]


def to_device(device, *tensors):
    """Each tensor moved to `device` (None stays None)."""
    return [None if t is None else t.to(device) for t in tensors]


#: the fused optimizers' hyperparameters the tests use
OPTIMIZER_SETTINGS = {
    "sgd": dict(lr=0.3),
    "rowwise_adagrad": dict(lr=0.3, eps=1e-3),
    "adam": dict(lr=0.05, eps=1e-6, betas=(0.8, 0.95)),
}


def initial_optimizer_state(optimizer, num_rows, dim, seed=0):
    """Random optimizer state in the reference's layout ({} for SGD)."""
    g = torch.Generator().manual_seed(seed)
    if optimizer == "rowwise_adagrad":
        return {"sum": torch.rand(num_rows, generator=g)}
    if optimizer == "adam":
        return {"m": torch.randn(num_rows, dim, generator=g) * 0.1, "v": torch.rand(num_rows, dim, generator=g)}
    return {}


def kernel_state_tensors(optimizer, state):
    """The reference's state as the fused update's (state1, state2)."""
    if optimizer == "rowwise_adagrad":
        return state["sum"], None
    if optimizer == "adam":
        return state["m"], state["v"]
    return None, None


def small_bag_inputs():
    """Two tables (6 and 4 rows), 3 samples, D=8, per-sample weights, no empty bag."""
    return make_bag_inputs(29, [6, 4], 3, 8, psw=True, empty_frac=0.0)
