"""Resident memory of `recengine serve --workers N` against N separate single-process servers.

    python -m recengine.bench.worker_memory --checkpoint runs/beauty [--workers 1,2,4] [--dtype float32]

For each N the pre-fork server (recengine.serving.workers) starts, answers `requests` requests (so every worker
has run the model), and the memory of the master and its workers is read from /proc/<pid>/smaps_rollup: RSS
(counts a shared page in every process), PSS (each shared page split between the processes that map it: the
sum is what the group really holds) and USS (pages only one process maps). N separate servers would hold N
times the one-worker figure; the table shows both.
"""

from __future__ import annotations

import argparse
import http.client
import json
import subprocess
import sys
import time

from recengine._atomic import write_json
from recengine.machine import machine_summary
from recengine.serving.local_server import free_port
from recengine.serving.threads import serving_environment


def smaps_rollup(pid: int) -> dict[str, int]:
    """{"rss", "pss", "uss"} in KiB of process `pid` (USS = private clean + private dirty)."""
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            name, _, rest = line.partition(":")
            parts = rest.split()
            if len(parts) == 2 and parts[1] == "kB":
                fields[name.strip()] = int(parts[0])
    return {
        "rss": fields.get("Rss", 0),
        "pss": fields.get("Pss", 0),
        "uss": fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0),
    }


def children(pid: int) -> list[int]:
    """The child processes of `pid`."""
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


def _post(port: int, body: dict) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("POST", "/recommend", body=json.dumps(body), headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    r.read()
    return r.status


def measure(checkpoint: str, workers: int, dtype: str, requests: int = 200) -> dict:
    """Memory of the master and of its `workers` workers (KiB, summed over the workers) after `requests`;
    workers=0: one single-process server (`recengine serve` without --workers), as "master"."""
    port = free_port()
    code = (
        "from recengine.serving.workers import serve_workers; "
        f"serve_workers({checkpoint!r}, '127.0.0.1', {port}, workers={workers}, dtype={dtype!r}, threads=1)"
        if workers
        else "from recengine.serving.http import serve; "
        f"serve({checkpoint!r}, '127.0.0.1', {port}, {dtype!r}, threads=1)"
    )
    master = subprocess.Popen([sys.executable, "-c", code], env=serving_environment("passive"))
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if _post(port, {"history": [1, 2, 3], "k": 10}) == 200:
                    break
            except OSError:
                if master.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the server did not start") from None
                time.sleep(0.3)
        for i in range(requests):  # spread over the workers by the kernel's accept queue
            _post(port, {"history": [i % 50, (7 * i) % 50, 3], "k": 10})
        time.sleep(1.0)
        kids = children(master.pid) if workers else []
        per = [smaps_rollup(p) for p in kids]
        return {
            "workers": workers,
            "master": smaps_rollup(master.pid),
            "workers_sum": {k: sum(m[k] for m in per) for k in ("rss", "pss", "uss")},
            "per_worker": per,
        }
    finally:
        master.terminate()
        master.wait(timeout=60)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m recengine.bench.worker_memory", description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--workers", default="1,2,4")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "int8"])
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    counts = [int(x) for x in args.workers.split(",")]
    print(machine_summary())
    single = measure(args.checkpoint, 0, args.dtype)
    rows = [measure(args.checkpoint, n, args.dtype) for n in counts]
    one = single["master"]
    print(
        f"one single-process server: RSS {one['rss'] / 1024:.0f} MiB, PSS {one['pss'] / 1024:.0f}, "
        f"USS {one['uss'] / 1024:.0f}"
    )
    print("| workers | master + workers RSS MiB | PSS MiB | USS MiB | N single-process servers (N x PSS) MiB |")
    print("|---|---|---|---|---|")
    for r in rows:
        tot = {k: (r["master"][k] + r["workers_sum"][k]) / 1024 for k in ("rss", "pss", "uss")}
        sep = r["workers"] * one["pss"] / 1024
        print(f"| {r['workers']} | {tot['rss']:.0f} | {tot['pss']:.0f} | {tot['uss']:.0f} | {sep:.0f} |")
    rows = [single, *rows]
    if args.json:
        write_json(args.json, {"rows": rows, "machine": machine_summary()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
