"""Catalog top-k at every batch size: the served item table's top-k against plain matmul + topk.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/catalog_batches.py [--items 54000,262144,1048576]
        [--batches 1,4,16,64,256,1024] [--threads N] [--quick]

(PASSIVE as in serving: the process holds two OpenMP runtimes, torch's and recengine._C's, and the spinning
threads of one would otherwise take the cores the other needs next.)

For each catalog size N and batch B, the item table (float32, bfloat16 and row-wise int8, D = 64, k = 10, an item
bias) answers `InferenceTable.topk` the way the Recommender calls it (inputs validated once, the C++ kernels
called directly), and the peer computes `torch.topk(Q @ E.T + b, k)` over the float32 table (one B x N matrix).
Calls are interleaved (peer, then each table, round after round) so a busy machine slows all of them alike; the
table prints the median milliseconds and each table's speed-up over the peer measured in the same rounds, and at
batch 1 the fraction of the memory bound (the stored table read once at the bandwidth of a plain sum over the
float32 table, measured in the same run).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from recengine.machine import machine_summary
from recengine.serving.item_table import InferenceTable

D, K = 64, 10
DTYPES = ("float32", "bfloat16", "int8")


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(N: int, B: int, tables: dict, E: torch.Tensor, bias: torch.Tensor, rounds: int) -> dict:
    """Median seconds of the peer and of each table's top-k, interleaved over `rounds` rounds."""
    Q = torch.randn(B, D, generator=torch.Generator().manual_seed(B)) / D**0.25
    calls = {"matmul+topk": lambda: torch.topk(torch.addmm(bias, Q, E.T), K)}
    for name, table in tables.items():
        calls[name] = lambda table=table: table.topk(Q, K, None, None, checked=True)
    for fn in calls.values():  # warm-up
        fn()
    times = {name: [] for name in calls}
    for _ in range(rounds):
        for name, fn in calls.items():
            times[name].append(_time(fn))
    return {name: statistics.median(ts) for name, ts in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", default="54000,262144,1048576")
    parser.add_argument("--batches", default="1,4,16,64,256,1024")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default; serving runs 1)")
    parser.add_argument("--quick", action="store_true", help="small catalogs and few rounds (a smoke run)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    items = [int(x) for x in args.items.split(",")]
    batches = [int(x) for x in args.batches.split(",")]
    if args.quick:
        items, batches = [5000], [1, 16]
    print(machine_summary())
    header = "| N | B | matmul+topk ms | " + " | ".join(f"{d} ms (x)" for d in DTYPES) + " | batch-1 memory bound |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for N in items:
        g = torch.Generator().manual_seed(N)
        E = torch.randn(N, D, generator=g) / D**0.25
        bias = 0.1 * torch.randn(N, generator=g)
        tables = {d: InferenceTable(E, bias, d) for d in DTYPES}
        for B in batches:
            work = N * max(B, 8)  # fewer rounds where one call is long
            rounds = 3 if args.quick else max(3, min(41, int(4e8 / work)))
            med = measure(N, B, tables, E, bias, rounds)
            base = med["matmul+topk"]
            cells = [f"{med[d] * 1e3:.2f} ({base / med[d]:.2f}x)" for d in DTYPES]
            bound = ""
            if B == 1:  # the bandwidth of one plain pass over the float32 table, in the same run
                sweep = statistics.median(_time(E.sum) for _ in range(rounds))
                gbs = E.numel() * 4 / sweep
                bound = ", ".join(f"{d} {tables[d].nbytes() / gbs / med[d]:.0%}" for d in DTYPES)
            print(f"| {N:,} | {B} | {base * 1e3:.2f} | " + " | ".join(cells) + f" | {bound} |", flush=True)


if __name__ == "__main__":
    main()
