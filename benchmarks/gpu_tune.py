"""Times launch shapes of the Triton policy kernels on a GPU (run by hand on a CUDA machine; CI never runs it).

For each (rows per program, items per tile, warps, tl.dot precision) it times catalog_topk / catalog_sample /
catalog_logsumexp at W2 (B=1024, N=262,144, D=64, k=10) and at W4's argmax (B=256, N=65,536, k=1), and the
cross-entropy forward+backward, each through the public op, and checks the answers against plain PyTorch
(float64 scores) so a fast but wrong shape cannot win. Also times the embedding forward with and without the
value checks. Prints one table per kernel and writes gpu_tune.json to $OUT (default ./results).

    python benchmarks/gpu_tune.py                 # TUNE_ONLY=ce (or embedding,scan) for a part
"""

from __future__ import annotations

import itertools
import json
import os
import sys

import torch
import triton.testing

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from recengine import ops  # noqa: E402
from recengine.kernels import policy as kpolicy  # noqa: E402

# TUNE_DRY=1: a seconds-long rehearsal on the CPU (Triton interpreted, tiny shapes, two shapes per grid)
DRY = os.environ.get("TUNE_DRY") == "1"
DEV = "cpu" if DRY else "cuda"
SCALE = 64 if DRY else 1


DEFAULT = dict(kpolicy.CONFIG)
OUT = os.environ.get("OUT", "results")


def record(results, row):
    """Keep the row and rewrite the JSON at once: a run cut short still leaves what it measured."""
    results.append(row)
    print(row, flush=True)
    with open(os.path.join(OUT, "gpu_tune.json"), "w") as f:
        json.dump({"device": "cpu (dry run)" if DRY else torch.cuda.get_device_name(), "rows": results}, f, indent=1)


def bench(fn) -> float:
    if DRY:
        fn()
        return 0.0
    return float(triton.testing.do_bench(fn, warmup=20, rep=80, return_mode="median"))


def inputs(B, N, D, seed=0):
    g = torch.Generator().manual_seed(seed)
    Q = (torch.randn(B, D, generator=g) / D**0.25).to(DEV)
    E = (torch.randn(N, D, generator=g) / D**0.25).to(DEV)
    bias = (0.1 * torch.randn(N, generator=g)).to(DEV)
    return Q, E, bias


def scan_rows(results):
    shapes = {"W2": (1024 // SCALE, 262144 // SCALE, 64, 10), "W4": (256 // SCALE, 65536 // SCALE, 64, 1)}
    data = {name: inputs(B, N, D) for name, (B, N, D, _) in shapes.items()}
    truth = {}
    for name, (Q, E, bias) in data.items():
        logits = Q.double() @ E.double().T + bias.double()
        k = shapes[name][3]
        truth[name] = (logits.topk(k, dim=1).indices, torch.logsumexp(logits, 1))
        del logits
    shapes_ = [(16, 64, 4), (32, 64, 4), (64, 64, 4), (64, 64, 8), (32, 128, 4), (64, 128, 8), (128, 64, 8)]
    grid = [(*sh, prec) for prec in ("ieee", "tf32x3") for sh in shapes_][: 2 if DRY else None]
    for block_b, block_n, warps, prec in grid:
        kpolicy.CONFIG.update(scan=(block_b, block_n, warps), precision=prec)
        row = {"kernel": "scan", "block_b": block_b, "block_n": block_n, "warps": warps, "precision": prec}
        try:
            for name, (Q, E, bias) in data.items():
                k = shapes[name][3]
                ids_true, lse_true = truth[name]
                _, ids = ops.catalog_topk(Q, E, k, bias=bias)
                row[f"{name} topk match"] = float((ids == ids_true).all(1).float().mean())
                row[f"{name} topk ms"] = bench(lambda Q=Q, E=E, k=k, bias=bias: ops.catalog_topk(Q, E, k, bias=bias))
                if name == "W2":
                    lse = ops.catalog_logsumexp(Q, E, bias=bias)
                    row["W2 lse max err"] = float((lse.double() - lse_true).abs().max())
                    row["W2 lse ms"] = bench(lambda Q=Q, E=E, bias=bias: ops.catalog_logsumexp(Q, E, bias=bias))
                    row["W2 sample ms"] = bench(
                        lambda Q=Q, E=E, k=k, bias=bias: ops.catalog_sample(Q, E, k, 7, bias=bias)
                    )
        except Exception as exc:  # a shape the compiler rejects (registers, shared memory): record and go on
            row["error"] = f"{type(exc).__name__}: {str(exc)[:120]}"
        record(results, row)


def ce_rows(results):
    Q, E, bias = inputs(1024 // SCALE, 262144 // SCALE, 64)
    target = torch.randint(0, E.shape[0], (Q.shape[0],), device=DEV)
    kpolicy.CONFIG.update(DEFAULT, precision="ieee")  # the yardstick: plain float32 products
    Qr, Er = Q.clone().requires_grad_(), E.clone().requires_grad_()
    ops.catalog_cross_entropy(Qr, Er, target, bias=bias).backward()
    ref_dq, ref_de = Qr.grad.double(), Er.grad.double()  # the default (ieee) shape as the yardstick
    # dQ runs split over the catalog with the scan's shape; the dE/dbias kernel's shape is what varies
    grid = [(16, 64, 4), (32, 64, 4), (64, 64, 4), (64, 64, 8), (32, 128, 4), (64, 128, 8), (128, 64, 8)]
    for (block_b, block_n, warps), prec in list(itertools.product(grid, ("tf32x3",)))[: 2 if DRY else None]:
        kpolicy.CONFIG.update(DEFAULT, de=(block_b, block_n, warps), precision=prec)
        row = {"kernel": "ce", "block_b": block_b, "block_n": block_n, "warps": warps, "precision": prec}
        try:
            Qr.grad = Er.grad = None
            ops.catalog_cross_entropy(Qr, Er, target, bias=bias).backward()
            row["dQ rel err"] = float((Qr.grad.double() - ref_dq).norm() / ref_dq.norm())
            row["dE rel err"] = float((Er.grad.double() - ref_de).norm() / ref_de.norm())

            def step():
                Qr.grad = Er.grad = None
                ops.catalog_cross_entropy(Qr, Er, target, bias=bias).backward()

            row["CE fwd+bwd ms"] = bench(step)
        except Exception as exc:
            row["error"] = f"{type(exc).__name__}: {str(exc)[:120]}"
        record(results, row)


def embedding_rows(results):
    from recengine.bench.embedding_bag import FULL, make_batch
    from recengine.ops.embedding_bag import embedding_bag

    cfg = dict(FULL, rows=FULL["rows"] // SCALE, batch=FULL["batch"] // SCALE)
    w = torch.randn(cfg["tables"] * cfg["rows"], cfg["dim"], device=DEV)
    table_offsets = torch.arange(cfg["tables"] + 1, device=DEV) * cfg["rows"]
    ids, offsets = (x.to(DEV) for x in make_batch(cfg, "zipf"))
    row = {"kernel": "embedding forward (W1 zipf)"}
    row["checked ms"] = bench(lambda: embedding_bag(w, table_offsets, ids, offsets))
    row["unchecked ms"] = bench(lambda: torch.ops.recengine.embedding_bag(w, table_offsets, ids, offsets, None, "sum"))
    flat = ids + torch.repeat_interleave(table_offsets[:-1], cfg["batch"] * cfg["bag"])
    starts = offsets[:-1].contiguous()
    row["F.embedding_bag ms"] = bench(lambda: torch.nn.functional.embedding_bag(flat, w, starts, mode="sum"))
    record(results, row)


def main():
    assert DRY or torch.cuda.is_available(), "needs a CUDA GPU (or TUNE_DRY=1 for a CPU rehearsal)"
    os.makedirs(OUT, exist_ok=True)
    results = []
    parts = os.environ.get("TUNE_ONLY", "embedding,scan,ce").split(",")
    for name, run in (("embedding", embedding_rows), ("scan", scan_rows), ("ce", ce_rows)):
        if name in parts:
            run(results)
    for kind, keys in (
        (
            "scan",
            (
                "W2 topk ms",
                "W2 sample ms",
                "W2 lse ms",
                "W4 topk ms",
                "W2 topk match",
                "W4 topk match",
                "W2 lse max err",
            ),
        ),
        ("ce", ("CE fwd+bwd ms", "dQ rel err", "dE rel err")),
    ):
        print(f"\n{kind}: block_b block_n warps precision | " + " | ".join(keys))
        for r in results:
            if r.get("kernel") == kind:
                vals = " | ".join(f"{r[k]:.4g}" if k in r else "-" for k in keys)
                print(
                    f"{r['block_b']:4d} {r['block_n']:4d} {r['warps']} {r['precision']:7s} | {vals} "
                    f"{r.get('error', '')}"
                )


if __name__ == "__main__":
    main()
