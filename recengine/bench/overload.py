"""Overload: the endpoint at 1x and 2x the rate it sustains, open loop; what the admitted requests wait, what is shed.

    python -m recengine.bench.overload --checkpoint runs/beauty [--deadline-ms 50] [--seconds 20] [--neighbours 2]

The server (`recengine.serving.http.serve` in a child process, OMP_WAIT_POLICY=PASSIVE, one torch thread, a
deadline of `deadline_ms` per request, micro-batches of at most `max_batch`) first takes a closed loop of 32
clients (admission by queue length): its throughput is the capacity. The sustainable rate is what operators
mean by it, the highest open-loop rate the server answers within its objective: probes at fractions of the
capacity (`seconds` / 2 each), the highest one whose 200s keep p99 under the deadline with at least 99% of the
requests answered 200. Then an open loop (recengine.bench.http_load --rate) offers 1x and 2x that rate for
`seconds` each, to a server admitting by queue length only and to one that also refuses what it estimates it
cannot answer by the deadline (`shed`, the default). Each run reports the offered rate, the requests answered 200
per second (goodput), their p50 / p99 latency from when each was due, and the 503s (shed at once, or dropped
after waiting) and 504s (the model ran out of time). With `neighbours`, that many busy processes (a torch matmul
loop each) run beside the server throughout.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from recengine._atomic import write_json
from recengine.bench.soak import soak_histories
from recengine.machine import machine_summary
from recengine.serving.local_server import free_port, wait_healthy
from recengine.serving.preflight import check_servable
from recengine.serving.threads import serving_environment

BUSY = "import torch\ntorch.set_num_threads(1)\na = torch.randn(512, 512)\nwhile True:\n    a @ a\n"


def _load(port: int, histories, count: int, *, rate: float | None, clients: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="recengine-overload-") as tmp:
        req, out = os.path.join(tmp, "requests.json"), os.path.join(tmp, "replies.json")
        with open(req, "w") as f:
            json.dump([{"history": histories[i % len(histories)], "k": 10} for i in range(count)], f)
        argv = [sys.executable, "-m", "recengine.bench.http_load", "--port", str(port), "--requests", req]
        argv += ["--out", out, "--clients", str(clients)] + (["--rate", str(rate)] if rate else [])
        subprocess.run(argv, check=True, timeout=3600)
        with open(out) as f:
            return json.load(f)


def _open_loop(port: int, histories, rate: float, seconds: float) -> dict:
    """The summary of `seconds` of Poisson arrivals at `rate` requests/s (at most 256 connections)."""
    return summarize(_load(port, histories, max(1, int(rate * seconds)), rate=rate, clients=256), rate)


def summarize(load: dict, offered: float | None) -> dict:
    """Goodput, the 200s' p50 / p99 (ms) and the refusals of one load run."""
    statuses, replies, lat = load["statuses"], load["replies"], load["latencies_s"]
    ok = [t for s, t in zip(statuses, lat) if s == 200]
    errors = [r.get("error", "") for s, r in zip(statuses, replies) if s == 503]
    return {
        "offered_per_s": offered,
        "requests": len(statuses),
        "goodput_per_s": len(ok) / load["wall_s"],
        "ok": len(ok),
        "p50_ms": float(np.percentile(ok, 50) * 1e3) if ok else float("nan"),
        "p99_ms": float(np.percentile(ok, 99) * 1e3) if ok else float("nan"),
        "shed_503": sum("model is busy" in e for e in errors),
        "queue_full_503": sum("queue is full" in e for e in errors),
        "late_503": sum("before the model could run" in e for e in errors),
        "late_504": sum(s == 504 for s in statuses),
        "other": sum(s not in (200, 503, 504) for s in statuses),
    }


PROBE_FRACTIONS = (0.9, 0.75, 0.6, 0.45, 0.3, 0.15)
"""the fractions of the closed-loop capacity probed, highest first, for the sustainable rate"""


def meets_objective(summary: dict, deadline_ms: float) -> bool:
    """Whether one open-loop run kept its objective: at least 99% of the requests answered 200, their p99 under
    the deadline."""
    return summary["ok"] >= 0.99 * summary["requests"] and summary["p99_ms"] < deadline_ms


def _start_server(checkpoint: str, dtype: str, deadline_ms: float, shed: bool, max_batch: int):
    port = free_port()
    code = (
        f"from recengine.serving.http import serve; serve({checkpoint!r}, '127.0.0.1', {port}, {dtype!r}, "
        f"threads=1, deadline_ms={deadline_ms}, shed={shed}, max_batch={max_batch})"
    )
    server = subprocess.Popen([sys.executable, "-c", code], env=serving_environment("passive"))
    wait_healthy(port, server)
    return port, server


def run(
    checkpoint: str,
    *,
    deadline_ms: float,
    seconds: float,
    neighbours: int,
    dtype: str = "float32",
    max_batch: int = 256,
) -> dict:
    """The closed-loop capacity, the sustainable rate, then 1x and 2x of it open loop, with and without shedding
    (see the module docstring)."""
    from recengine.serving.recommender import Recommender

    rec = Recommender.load(checkpoint, dtype=dtype)
    histories = soak_histories(rec.num_items, rec.max_len, 512)
    del rec
    busy = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(neighbours)]
    out: dict = {"deadline_ms": deadline_ms, "neighbours": neighbours, "max_batch": max_batch, "runs": {}}
    sustainable = None
    try:
        for shed in (False, True):  # the rates are measured without shedding (a shed closed loop only spins)
            port, server = _start_server(checkpoint, dtype, deadline_ms, shed, max_batch)
            try:
                _load(port, histories, 300, rate=None, clients=32)  # warm-up
                rule = "estimated finish" if shed else "queue length"
                if sustainable is None:
                    closed = summarize(_load(port, histories, 2000, rate=None, clients=32), None)
                    out["runs"]["closed loop, 32 clients (capacity)"] = closed
                    sustainable = _sustainable_rate(port, histories, closed["goodput_per_s"], seconds / 2, out)
                    out["sustainable_per_s"] = sustainable
                for factor in (1.0, 2.0):
                    out["runs"][f"{factor:.0f}x open loop ({rule})"] = _open_loop(
                        port, histories, factor * sustainable, seconds
                    )
            finally:
                server.terminate()
                server.wait(timeout=30)
    finally:
        for b in busy:
            b.kill()
            b.wait()
    return out


def _sustainable_rate(port: int, histories, capacity: float, seconds: float, out: dict) -> float:
    """The highest probed rate (PROBE_FRACTIONS of `capacity`) that meets the objective; the lowest probe when
    none does (said in the row's name). Each probe's summary goes into out["runs"]."""
    for fraction in PROBE_FRACTIONS:
        rate = fraction * capacity
        probe = _open_loop(port, histories, rate, seconds)
        kept = meets_objective(probe, out["deadline_ms"])
        out["runs"][f"probe {fraction:.2f} x capacity ({'meets' if kept else 'misses'} the objective)"] = probe
        if kept:
            return rate
    return PROBE_FRACTIONS[-1] * capacity


def markdown(result: dict) -> str:
    lines = [
        f"deadline {result['deadline_ms']:.0f} ms, micro-batches of at most {result.get('max_batch', 256)}, "
        f"{result['neighbours']} busy neighbour processes, sustainable rate "
        f"{result.get('sustainable_per_s', float('nan')):.0f} /s",
        "",
        "| run | offered /s | goodput /s | p50 ms | p99 ms | shed 503 | queue-full 503 | late 503 | late 504 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in result["runs"].items():
        offered = "-" if r["offered_per_s"] is None else f"{r['offered_per_s']:.0f}"
        lines.append(
            f"| {name} | {offered} | {r['goodput_per_s']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
            f"{r['shed_503']} | {r['queue_full_503']} | {r['late_503']} | {r['late_504']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m recengine.bench.overload", description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--deadline-ms", type=float, default=50.0)
    p.add_argument("--seconds", type=float, default=20.0, help="seconds of each open-loop run")
    p.add_argument("--neighbours", type=int, default=0, help="busy processes beside the server")
    p.add_argument("--max-batch", type=int, default=256, help="the server's largest micro-batch")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    check_servable(args.checkpoint)
    start = time.perf_counter()
    result = run(
        args.checkpoint,
        deadline_ms=args.deadline_ms,
        seconds=args.seconds,
        neighbours=args.neighbours,
        max_batch=args.max_batch,
    )
    print(machine_summary())
    print(markdown(result))
    print(f"\n({time.perf_counter() - start:.0f} s)")
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
