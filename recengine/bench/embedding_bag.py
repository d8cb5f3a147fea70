"""Embedding family workloads: W1 = 8 tables x 1,000,000 rows x 64 floats, batch 4096, 20 ids per bag.

Two id distributions: Zipf (a = 1.1, rank r -> row r-1 of its table, so the hot rows sit at the start
of each table as in FBGEMM's benchmark; drawn exactly, truncated to the table) and uniform.

(a) forward: recengine (EmbeddingTables, no grad) vs the obvious user code (a loop of 8
    nn.EmbeddingBag), one F.embedding_bag over the concatenated table, and FBGEMM's CPU TBE when
    installed (`pip install --no-deps fbgemm-gpu-cpu==1.8.0`; optional, left out when it does not load).
(b) training step forward + backward + row-wise Adagrad: recengine (fused update) vs the same math in
    plain PyTorch (nn.EmbeddingBag(sparse=True), coalesce, row-wise update), vs torch's own sparse
    Adagrad (torch.optim.Adagrad on the sparse gradients: element-wise Adagrad, so more state and
    work, the usual alternative a user reaches for), and FBGEMM's fused EXACT_ROWWISE_ADAGRAD.

Useful bytes: forward = every looked-up row read once + the output written (+ ids, offsets); training
step = forward + grad_output read + every unique row read and written once with its state float.
The providers update their weights in place; timing does not depend on the values, so no state is
restored between calls. Inputs are pre-split per table for the loop reference (not timed). Every
provider owns its rows: the references use ordinary allocations, recengine.nn.EmbeddingTables allocates
through recengine._native.empty_with_huge_pages, FBGEMM allocates its own.
"""

from __future__ import annotations

import torch

from recengine.bench import RECENGINE, Case, Workload

REF_LOOP = "reference: loop of nn.EmbeddingBag"
REF_CONCAT = "reference: one F.embedding_bag (concatenated)"
REF_STEP = "reference: sparse grad + coalesce + row-wise Adagrad"
REF_TORCH_ADAGRAD = "reference: torch.optim.Adagrad (sparse)"
PEER_FBGEMM = "peer: FBGEMM TBE (CPU)"

FULL = dict(tables=8, rows=1_000_000, dim=64, batch=4096, bag=20)
QUICK = dict(tables=8, rows=20_000, dim=64, batch=256, bag=20)
LR, EPS = 0.01, 1e-8


def zipf_ids(num: int, rows: int, a: float, g: torch.Generator) -> torch.Tensor:
    """`num` ids in [0, rows) with P(id = r-1) proportional to r^-a (inverse CDF, exact)."""
    ranks = torch.arange(1, rows + 1, dtype=torch.float64)
    cdf = torch.cumsum(ranks.pow(-a), 0)
    cdf /= cdf[-1].clone()
    u = torch.rand(num, generator=g, dtype=torch.float64)
    return torch.searchsorted(cdf, u).clamp_(max=rows - 1)


def make_batch(cfg: dict, dist: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Table-major (ids int64, offsets (T*B+1,)) with exactly `bag` ids per bag."""
    g = torch.Generator().manual_seed(seed)
    n = cfg["tables"] * cfg["batch"] * cfg["bag"]
    if dist == "zipf":
        ids = zipf_ids(n, cfg["rows"], 1.1, g)
    else:
        ids = torch.randint(0, cfg["rows"], (n,), generator=g)
    offsets = torch.arange(cfg["tables"] * cfg["batch"] + 1, dtype=torch.int64) * cfg["bag"]
    return ids, offsets


def _fbgemm():
    """FBGEMM's TBE class and enums, or None when fbgemm-gpu-cpu is not installed or does not load."""
    try:
        from fbgemm_gpu.split_embedding_configs import EmbOptimType
        from fbgemm_gpu.split_table_batched_embeddings_ops_common import PoolingMode
        from fbgemm_gpu.split_table_batched_embeddings_ops_training import (
            ComputeDevice,
            EmbeddingLocation,
            SplitTableBatchedEmbeddingBagsCodegen,
        )
    except Exception:  # noqa: BLE001 - any failure to import/load just leaves the peer out
        return None
    return SplitTableBatchedEmbeddingBagsCodegen, EmbOptimType, PoolingMode, ComputeDevice, EmbeddingLocation


def _fbgemm_tbe(cfg: dict, device: str):
    if device != "cpu":  # the CPU wheel has no CUDA kernels
        return None
    found = _fbgemm()
    if found is None:
        return None
    tbe_cls, optim_type, pooling_mode, compute_device, location = found
    try:
        specs = [(cfg["rows"], cfg["dim"], location.HOST, compute_device.CPU)] * cfg["tables"]
        return tbe_cls(
            specs, optimizer=optim_type.EXACT_ROWWISE_ADAGRAD, learning_rate=LR, eps=EPS, pooling_mode=pooling_mode.SUM
        )
    except Exception:  # noqa: BLE001
        return None


def _bytes(cfg: dict, n_ids: int, unique_rows: int, train: bool) -> float:
    row = cfg["dim"] * 4
    out = cfg["batch"] * cfg["tables"] * row
    index = n_ids * 8 + (cfg["tables"] * cfg["batch"] + 1) * 8
    fwd = n_ids * row + out + index
    if not train:
        return float(fwd)
    return float(fwd + out + index + unique_rows * (2 * row + 8))


def _forward_workload(cfg: dict, dist: str, device: str) -> Workload:
    providers = (RECENGINE, REF_LOOP, REF_CONCAT, PEER_FBGEMM)

    def build():
        from recengine.nn.embedding_tables import EmbeddingTables, TableSpec
        from recengine.reference.embedding_bag import EmbeddingBagLoop, concatenated_forward, global_rows, split_tables

        specs = [TableSpec(f"t{t}", cfg["rows"], cfg["dim"]) for t in range(cfg["tables"])]
        tables = EmbeddingTables(specs, pooling="sum", device=device, seed=0)
        ids, offsets = (x.to(device) for x in make_batch(cfg, dist))
        # the references own their rows as user code would (ordinary allocation); recengine's tables use
        # huge pages where the OS allows, which is part of what is measured
        weights = tables.weights.detach().clone()
        loop = EmbeddingBagLoop(
            [weights[t * cfg["rows"] : (t + 1) * cfg["rows"]] for t in range(cfg["tables"])], pooling="sum", sparse=True
        )
        per_table = split_tables(ids, offsets, cfg["tables"])
        rows = global_rows(tables.table_offsets, ids, offsets)
        nbytes = _bytes(cfg, ids.numel(), 0, train=False)

        def no_grad(fn):
            def run():
                with torch.no_grad():
                    return fn()

            return run

        cases = {
            RECENGINE: Case(fn=no_grad(lambda: tables(ids, offsets)), bytes=nbytes, items=cfg["batch"]),
            REF_LOOP: Case(fn=no_grad(lambda: loop(per_table)), bytes=nbytes, items=cfg["batch"]),
            REF_CONCAT: Case(
                fn=no_grad(lambda: concatenated_forward(weights, rows, offsets, cfg["tables"])),
                bytes=nbytes,
                items=cfg["batch"],
            ),
        }
        tbe = _fbgemm_tbe(cfg, device)
        if tbe is not None:
            cases[PEER_FBGEMM] = Case(fn=no_grad(lambda: tbe(ids, offsets)), bytes=nbytes, items=cfg["batch"])
        return cases

    return Workload(
        f"W1 forward {dist}",
        providers,
        build,
        note=f"{cfg['tables']} x {cfg['rows']} x {cfg['dim']}, batch {cfg['batch']}, {cfg['bag']} ids/bag, "
        "sum pooling; bytes = rows read + output written",
    )


#: on CUDA the recengine W1 train step is the captured, sync-free step; the module's eager step is then this one
REF_EAGER_STEP = "reference: recengine EmbeddingTables step, eager"


def _train_workload(cfg: dict, dist: str, device: str) -> Workload:
    providers = (RECENGINE, REF_STEP, REF_TORCH_ADAGRAD, PEER_FBGEMM)
    if device.startswith("cuda"):
        providers = (RECENGINE, REF_EAGER_STEP, REF_STEP, REF_TORCH_ADAGRAD, PEER_FBGEMM)

    def build():
        from recengine.nn.embedding_tables import EmbeddingTables, TableSpec
        from recengine.optim import RowwiseAdagrad
        from recengine.reference.embedding_bag import (
            EmbeddingBagLoop,
            global_rows,
            sparse_rowwise_adagrad_,
            split_tables,
        )

        specs = [TableSpec(f"t{t}", cfg["rows"], cfg["dim"]) for t in range(cfg["tables"])]
        tables = EmbeddingTables(specs, pooling="sum", optimizer=RowwiseAdagrad(lr=LR, eps=EPS), device=device, seed=0)
        ids, offsets = (x.to(device) for x in make_batch(cfg, dist))
        grad = torch.randn(cfg["batch"], cfg["tables"] * cfg["dim"], generator=torch.Generator().manual_seed(1))
        grad = grad.to(device)
        unique_rows = int(torch.unique(global_rows(tables.table_offsets, ids, offsets)).numel())
        nbytes = _bytes(cfg, ids.numel(), unique_rows, train=True)
        # the plain-PyTorch user code trains its own copy of the rows (views of one buffer)
        ref_weights = tables.weights.clone()
        loop = EmbeddingBagLoop(
            [ref_weights[t * cfg["rows"] : (t + 1) * cfg["rows"]] for t in range(cfg["tables"])],
            pooling="sum",
            sparse=True,
        )
        per_table = split_tables(ids, offsets, cfg["tables"])
        ref_state = [torch.zeros(cfg["rows"], device=device) for _ in range(cfg["tables"])]

        def ours():
            tables(ids, offsets).backward(grad)

        def reference_step():
            loop(per_table).backward(grad)
            for bag, state in zip(loop.bags, ref_state):
                sparse_rowwise_adagrad_(bag.weight, state, bag.weight.grad, LR, EPS)
                bag.weight.grad = None

        cases = {
            RECENGINE: Case(fn=ours, bytes=nbytes, items=cfg["batch"]),
            REF_STEP: Case(fn=reference_step, bytes=nbytes, items=cfg["batch"]),
        }
        if device.startswith("cuda"):  # one CUDA graph replay per step, no host sync (the batch is loaded once)
            from recengine.train.embedding_step import EmbeddingTrainStep

            captured = EmbeddingTrainStep(tables, capture=True)
            captured.load(ids, offsets, grad)
            cases[REF_EAGER_STEP] = cases[RECENGINE]
            cases[RECENGINE] = Case(fn=captured.run, bytes=nbytes, items=cfg["batch"], warmup=3)
        try:  # element-wise state: one more (R, D) buffer
            torch_adagrad = torch.optim.Adagrad(loop.parameters(), lr=LR, eps=EPS)

            def torch_step():
                loop(per_table).backward(grad)
                torch_adagrad.step()
                torch_adagrad.zero_grad(set_to_none=True)

            cases[REF_TORCH_ADAGRAD] = Case(fn=torch_step, bytes=nbytes, items=cfg["batch"])
        except RuntimeError:  # out of memory on a small machine: leave it out
            pass
        tbe = _fbgemm_tbe(cfg, device)
        if tbe is not None:

            def fbgemm_step():
                tbe(ids, offsets).backward(grad)

            cases[PEER_FBGEMM] = Case(fn=fbgemm_step, bytes=nbytes, items=cfg["batch"])
        return cases

    return Workload(
        f"W1 train step {dist}",
        providers,
        build,
        note="forward + backward + row-wise Adagrad; bytes = forward + grad read + unique rows and "
        "their state read and written",
    )


def workloads(device: str, quick: bool = False) -> list[Workload]:
    cfg = QUICK if quick else FULL
    out = []
    for dist in ("zipf", "uniform"):
        out.append(_forward_workload(cfg, dist, device))
    for dist in ("zipf", "uniform"):
        out.append(_train_workload(cfg, dist, device))
    return out
