"""The W1 train step sharded over processes: 1 process vs 2 (gloo on 127.0.0.1), per-rank throughput, the
share of the step spent in communication, and the bytes each rank sends per step.

    python -m recengine.bench.distributed [--quick] [--ids uniform|zipf] [--steps N] [--json PATH]

W1 (recengine.bench.embedding_bag): 8 tables x 1,000,000 rows x 64 floats, 20 ids per bag, row-wise Adagrad.
Every rank feeds its own W1 batch of 4096 samples (weak scaling: the global batch grows with the ranks), so
per-rank throughput equal to the 1-process throughput would be perfect scaling. Rows measured:

- "1 process: EmbeddingTables": the single-process module;
- "1 process: ShardedEmbeddingTables": the same step through the sharded path in a world of one (the cost
  of bucketing and assembling, with no transport);
- "2 processes: <plan>": row-wise (every table split over both ranks) and table-wise (4 tables each).

The communication share is the time inside the all-to-alls over the step time; it includes waiting for
the slower rank (load imbalance: with Zipf ids the hot rows sit at the start of every table, so row-wise
puts them all on rank 0). Bytes are what one rank sends to the others per step (forward + backward).
Every process runs one intra-op thread, so a rank has the same compute in every row and the per-rank
figures compare directly (and no torch thread pool waits on a descheduled core of a shared machine).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch

from recengine.bench.embedding_bag import EPS, FULL, LR, QUICK, make_batch
from recengine.machine import describe_machine

__all__ = ["run", "format_table", "bytes_per_rank", "projection_table", "main"]

#: per-GPU all-to-all bandwidths of the projection (bytes/s): NVLink (H100/H200 class), InfiniBand (400 Gb/s NIC)
BANDWIDTHS = {"NVLink 450 GB/s": 450e9, "InfiniBand 50 GB/s": 50e9}
#: the collectives of one training step: headers, ids, pooled rows (forward); gradients (backward)
ALL_TO_ALLS_PER_STEP = 4


def _specs(cfg: dict):
    from recengine.nn.embedding_tables import TableSpec

    return [TableSpec(f"t{t}", cfg["rows"], cfg["dim"]) for t in range(cfg["tables"])]


def _time_steps(step, steps: int, counters=None) -> dict:
    step()  # warm-up: first-call costs and page faults of the touched rows
    step()
    if counters is not None:
        counters.reset_counters()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    result = {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times)}
    if counters is not None:
        result["comm_share"] = counters.seconds / sum(times)
        result["bytes_per_step"] = counters.bytes_sent / steps
        result["all_to_alls_per_step"] = counters.calls / steps
    return result


def rank_train_step(
    rank: int, world_size: int, cfg: dict, ids_kind: str, plan_kind: str, steps: int, with_single: bool
) -> dict:
    """One rank's timing of the sharded W1 train step (run under recengine.distributed.launch.run_local)."""
    from recengine.distributed import ShardedEmbeddingTables, ShardingPlan
    from recengine.nn.embedding_tables import EmbeddingTables
    from recengine.optim import RowwiseAdagrad

    specs = _specs(cfg)
    plan = (ShardingPlan.row_wise if plan_kind == "row-wise" else ShardingPlan.table_wise)(specs, world_size)
    ids, offsets = make_batch(cfg, ids_kind, seed=rank)
    grad = torch.randn(cfg["batch"], cfg["tables"] * cfg["dim"], generator=torch.Generator().manual_seed(rank))
    out = {}
    if with_single:
        single = EmbeddingTables(specs, pooling="sum", optimizer=RowwiseAdagrad(lr=LR, eps=EPS), seed=0)
        out["single"] = _time_steps(lambda: single(ids, offsets).backward(grad), steps)
        del single
    tables = ShardedEmbeddingTables(specs, pooling="sum", optimizer=RowwiseAdagrad(lr=LR, eps=EPS), plan=plan, seed=0)
    out["sharded"] = _time_steps(lambda: tables(ids, offsets).backward(grad), steps, tables.comm)
    return out


def run(quick: bool = False, ids_kind: str = "uniform", steps: int = 10) -> list[dict]:
    """Every row of the table (see the module docstring), as dicts."""
    from recengine.distributed.launch import run_local

    cfg = QUICK if quick else FULL
    rows = []
    one = run_local(rank_train_step, 1, (cfg, ids_kind, "row-wise", steps, True), timeout_s=1800, threads_per_rank=1)[0]
    rows.append({"setup": "1 process: EmbeddingTables", "ranks": 1, **one["single"]})
    rows.append({"setup": "1 process: ShardedEmbeddingTables", "ranks": 1, **one["sharded"]})
    for plan_kind in ("row-wise", "table-wise"):
        per_rank = run_local(
            rank_train_step,
            2,
            (cfg, ids_kind, plan_kind, steps, False),
            timeout_s=1800,
            collective_timeout_s=300,
            threads_per_rank=1,
        )
        for rank, result in enumerate(per_rank):
            rows.append({"setup": f"2 processes: {plan_kind}, rank {rank}", "ranks": 2, **result["sharded"]})
    for row in rows:
        row["samples_per_s_per_rank"] = cfg["batch"] / row["median_s"]
        row["ids"] = ids_kind
        row["config"] = dict(cfg)
    return rows


def bytes_per_rank(cfg: dict, world_size: int, plan_kind: str) -> float:
    """Bytes one rank sends per train step (uniform ids, every rank a batch of cfg["batch"]):

        headers   40 (W-1)
        lengths   8 B S (W-1)              S = tables a rank owns a shard of: T row-wise, T/W table-wise
        ids       8 N (W-1)/W              N = T B L ids of this rank's batch
        pooled    4 B S D (W-1)            owners send every requester its shards' (partial) sums
        gradients 4 B S D (W-1)            requesters send every owner the gradients of those sums

    Row-wise, S = T does not shrink with W: the pooled partial sums grow as (W-1) B T D. Table-wise needs
    W <= T (past that, ranks own no table and the owners' share of lookups grows)."""
    world, batch, tables, dim = world_size, cfg["batch"], cfg["tables"], cfg["dim"]
    shards = tables if plan_kind == "row-wise" else tables / world
    ids = tables * batch * cfg["bag"]
    return (
        40 * (world - 1)
        + 8 * batch * shards * (world - 1)
        + 8 * ids * (world - 1) / world
        + 2 * 4 * batch * shards * dim * (world - 1)
    )


def projection_table(cfg: dict, compute_s: float, latency_s: float = 10e-6) -> str:
    """Expected step time = compute_s + ALL_TO_ALLS_PER_STEP * latency_s + bytes_per_rank / bandwidth, at 8
    and 64 GPUs, for both plans (table-wise only where W <= T)."""
    lines = [
        "| plan | GPUs | MB sent per rank per step | " + " | ".join(f"step ms, {b}" for b in BANDWIDTHS) + " |",
        "|---|---:|---:|" + "---:|" * len(BANDWIDTHS),
    ]
    for plan_kind in ("row-wise", "table-wise"):
        for world in (2, 8, 64):
            if plan_kind == "table-wise" and world > cfg["tables"]:
                continue
            sent = bytes_per_rank(cfg, world, plan_kind)
            times = [compute_s + ALL_TO_ALLS_PER_STEP * latency_s + sent / bw for bw in BANDWIDTHS.values()]
            lines.append(
                f"| {plan_kind} | {world} | {sent / 1e6:.1f} | " + " | ".join(f"{t * 1e3:.2f}" for t in times) + " |"
            )
    return "\n".join(lines)


def format_table(rows: list[dict]) -> str:
    lines = [
        "| setup | ids | step ms (median) | min-max ms | samples/s per rank | comm share | MB sent/step/rank |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        share = f"{r['comm_share']:.0%}" if "comm_share" in r else "-"
        sent = f"{r['bytes_per_step'] / 1e6:.1f}" if "bytes_per_step" in r else "-"
        lines.append(
            f"| {r['setup']} | {r['ids']} | {r['median_s'] * 1e3:.1f} | {r['min_s'] * 1e3:.1f}-"
            f"{r['max_s'] * 1e3:.1f} | {r['samples_per_s_per_rank']:,.0f} | {share} | {sent} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="recengine bench distributed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small tables (20k rows) and batch 256")
    parser.add_argument("--ids", choices=("uniform", "zipf"), default="uniform", help="id distribution")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per setup (after 2 warm-up steps)")
    parser.add_argument("--json", default="results/bench_distributed.json", help="where to write the rows")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error("--steps: must be >= 1")
    rows = run(args.quick, args.ids, args.steps)
    print(format_table(rows))
    cfg = QUICK if args.quick else FULL
    print(
        f"\nformula (uniform ids), 2 ranks: row-wise {bytes_per_rank(cfg, 2, 'row-wise') / 1e6:.2f} MB, "
        f"table-wise {bytes_per_rank(cfg, 2, 'table-wise') / 1e6:.2f} MB sent per rank per step"
    )
    from recengine._atomic import write_text

    write_text(args.json, json.dumps({"machine": describe_machine(), "results": rows}, indent=1))
    print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
