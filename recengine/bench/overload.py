"""Overload: the endpoint at 1x and 2x the rate it sustains, open loop; what the admitted requests wait, what is shed.

    python -m recengine.bench.overload --checkpoint runs/beauty [--deadline-ms 50] [--seconds 20] [--neighbours 2]

The server (`recengine.serving.http.serve` in a child process, OMP_WAIT_POLICY=PASSIVE, one torch thread, a
deadline of `deadline_ms` per request) first takes a closed loop of 32 clients (admission by queue length): its
throughput is the sustainable rate. Then an open loop (recengine.bench.http_load --rate) offers 1x and 2x that
rate for `seconds` each, to a server admitting by queue length only and to one that also refuses what it
estimates it cannot answer by the deadline (`shed`, the default). Each run reports the
offered rate, the requests answered 200 per second (goodput), their p50 / p99 latency from when each was due,
and the 503s (shed at once, or dropped after waiting) and 504s (the model ran out of time). With `neighbours`,
that many busy processes (a torch matmul loop each) run beside the server throughout.
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


def run(checkpoint: str, *, deadline_ms: float, seconds: float, neighbours: int, dtype: str = "float32") -> dict:
    """The closed-loop capacity, then 1x and 2x of it open loop, with and without shedding (see the docstring)."""
    from recengine.serving.recommender import Recommender

    rec = Recommender.load(checkpoint, dtype=dtype)
    histories = soak_histories(rec.num_items, rec.max_len, 512)
    del rec
    busy = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(neighbours)]
    out: dict = {"deadline_ms": deadline_ms, "neighbours": neighbours, "runs": {}}
    capacity = None
    try:
        for shed in (False, True):  # the capacity is measured without shedding (a shed closed loop only spins)
            port = free_port()
            code = (
                f"from recengine.serving.http import serve; serve({checkpoint!r}, '127.0.0.1', {port}, {dtype!r}, "
                f"threads=1, deadline_ms={deadline_ms}, shed={shed})"
            )
            server = subprocess.Popen([sys.executable, "-c", code], env=serving_environment("passive"))
            try:
                wait_healthy(port, server)
                _load(port, histories, 300, rate=None, clients=32)  # warm-up
                rule = "estimated finish" if shed else "queue length"
                if capacity is None:
                    closed = summarize(_load(port, histories, 2000, rate=None, clients=32), None)
                    capacity = closed["goodput_per_s"]
                    out["runs"]["closed loop, 32 clients (sustainable rate)"] = closed
                for factor in (1.0, 2.0):
                    rate = factor * capacity
                    load = _load(port, histories, int(rate * seconds), rate=rate, clients=256)
                    out["runs"][f"{factor:.0f}x open loop ({rule})"] = summarize(load, rate)
            finally:
                server.terminate()
                server.wait(timeout=30)
    finally:
        for b in busy:
            b.kill()
            b.wait()
    return out


def markdown(result: dict) -> str:
    lines = [
        f"deadline {result['deadline_ms']:.0f} ms, {result['neighbours']} busy neighbour processes",
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
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    check_servable(args.checkpoint)
    start = time.perf_counter()
    result = run(args.checkpoint, deadline_ms=args.deadline_ms, seconds=args.seconds, neighbours=args.neighbours)
    print(machine_summary())
    print(markdown(result))
    print(f"\n({time.perf_counter() - start:.0f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
