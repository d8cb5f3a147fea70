"""Fault soak of the HTTP endpoint: mixed traffic on loopback for a while, with model swaps and a bad checkpoint.

    recengine bench serving --soak 600 --checkpoint runs/beauty     # ten minutes
    python -m recengine.bench.soak --checkpoint runs/beauty --seconds 600 [--json soak.json]

The server (`recengine.serving.http.serve` in a child process, OMP_WAIT_POLICY=PASSIVE, one torch thread) answers,
for `seconds`:

* valid requests from `clients` (32) closed-loop keep-alive connections, each checked against the answer the
  Python API gives for the model version the server names in the reply's X-Model-Version header: version 1 is
  the checkpoint as given (A), every swap alternates between a second model B (A with its item bias perturbed,
  so most answers differ) and A again, so an odd version must answer as A and an even one as B: an answer that
  matches neither its version's model is "wrong", and one that matches the other model "from the other model"
  (what a half-swapped server would give);
* malformed bodies (truncated JSON, wrong types) and oversized ones (a history over the server's limit), each
  expecting its 4xx;
* slow clients that send a valid request in pieces over a second (answered, and checked, like the others) and
  clients that disconnect halfway through a body;
* a model swap (POST /admin/reload) every `swap_every` seconds, and once, halfway, a truncated copy of the
  checkpoint (a half-written upload), which must be refused with the old model still serving.

It reports the valid requests answered correctly, p50 / p99 per time window, the answers by status and cause (the
server's own /metrics) and by kind of client, the swaps, and the server's resident memory over time (its growth
after the first window bounds a leak).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

from recengine._atomic import write_json
from recengine.checkpoint import read, write
from recengine.machine import describe_machine
from recengine.serving.http import MAX_HISTORY
from recengine.serving.local_server import free_port, wait_healthy
from recengine.serving.preflight import checkpoint_file
from recengine.serving.recommender import Recommender
from recengine.serving.threads import serving_environment

K = 10
#: the kinds of fault clients and the status each expects (None: no answer, the client hangs up)
FAULTS = {"malformed": 422, "wrong_types": 422, "oversized": 422, "slow": 200, "disconnect": None}


# ----------------------------------------------------------------------------------------------- models
def make_models(checkpoint: str, out_dir: str) -> dict[str, str]:
    """The soak's three checkpoints under `out_dir`: "a" (the given one, copied), "b" (A with its item bias, or
    else every float tensor, perturbed: mostly different answers over the same catalog) and "bad" (the first half
    of A's file: a truncated upload)."""
    src = checkpoint_file(checkpoint)
    tensors, meta = read(src)
    kind = meta.pop("kind")
    meta.pop("format_version", None)
    g = torch.Generator().manual_seed(0)
    changed = {}
    for name, t in tensors.items():
        if name.endswith("head.bias"):
            changed[name] = t + t.std().clamp_min(0.1) * 3.0 * torch.randn(t.shape, generator=g)
    if not changed:
        for name, t in tensors.items():
            if t.is_floating_point():
                changed[name] = t * (1.0 + 0.2 * torch.randn(t.shape, generator=g))
    paths = {v: os.path.join(out_dir, v, os.path.basename(src)) for v in ("a", "b", "bad")}
    for p in paths.values():
        os.makedirs(os.path.dirname(p), exist_ok=True)
    shutil.copyfile(src, paths["a"])
    write(paths["b"], {**tensors, **changed}, kind, meta)
    with open(src, "rb") as f:
        data = f.read()
    with open(paths["bad"], "wb") as f:
        f.write(data[: len(data) // 2])
    return paths


def soak_histories(num_items: int, max_len: int, count: int, seed: int = 0) -> list[list[int]]:
    """`count` histories of 1 .. 2 * max_len random items (some longer than the model's window)."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, num_items, int(rng.integers(1, 2 * max_len + 1))).tolist() for _ in range(count)]


# ------------------------------------------------------------------------------------------------- HTTP
def _request(path: str, body: bytes) -> tuple[bytes, bytes]:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode(), body


async def _reply(reader: asyncio.StreamReader) -> tuple[int, dict, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, await reader.readexactly(int(headers.get("content-length", 0)))


class Soak:
    """One soak run against a server listening on `port` (see the module docstring); `run()` returns the
    records, the swaps and the memory samples."""

    def __init__(self, port, server_pid, paths, expected, histories, *, seconds, clients, swap_every):
        self.port, self.pid, self.paths = port, server_pid, paths
        self.expected, self.histories = expected, histories
        self.seconds, self.clients, self.swap_every = seconds, clients, swap_every
        self.valid: list[tuple] = []  # (t since start, latency s, status, verdict)
        self.faults: dict[str, dict[str, int]] = {kind: {} for kind in FAULTS}
        self.swaps: list[dict] = []
        self.memory: list[tuple[float, int]] = []  # (t, RSS KiB)

    def _verdict(self, status: int, headers: dict, body: bytes, i: int) -> str:
        if status != 200:
            return f"status {status}"
        version = int(headers.get("x-model-version", 0))
        items = json.loads(body)["items"]
        mine, other = ("a", "b") if version % 2 == 1 else ("b", "a")
        if items == self.expected[mine][i]:
            return "correct"
        return "from the other model" if items == self.expected[other][i] else "wrong"

    async def _valid_client(self, c: int, stop: float, t0: float) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        i = c
        try:
            while time.monotonic() < stop:
                i = (i + self.clients) % len(self.histories)
                head, body = _request("/recommend", json.dumps({"history": self.histories[i], "k": K}).encode())
                start = time.monotonic()
                writer.write(head + body)
                status, headers, reply = await _reply(reader)
                done = time.monotonic()
                self.valid.append((start - t0, done - start, status, self._verdict(status, headers, reply, i)))
        finally:
            writer.close()

    def _count(self, kind: str, outcome: str) -> None:
        self.faults[kind][outcome] = self.faults[kind].get(outcome, 0) + 1

    async def _fault_client(self, stop: float, seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() < stop:
            kind = rng.choice(list(FAULTS))
            i = rng.randrange(len(self.histories))
            good = json.dumps({"history": self.histories[i], "k": K}).encode()
            body = {
                "malformed": good[: len(good) // 2],
                "wrong_types": b'{"history": "not a list", "k": "ten"}',
                "oversized": json.dumps({"history": [1] * (MAX_HISTORY + 1), "k": K}).encode(),
                "slow": good,
                "disconnect": good,
            }[kind]
            head, body = _request("/recommend", body)
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError as exc:
                self._count(kind, f"connect failed: {type(exc).__name__}")
                continue
            try:
                if kind == "disconnect":  # half the body, then hang up
                    writer.write(head + body[: len(body) // 2])
                    await writer.drain()
                    self._count(kind, "hung up")
                    continue
                if kind == "slow":  # the request in four pieces over about a second
                    data = head + body
                    step = max(1, len(data) // 4)
                    for p in range(0, len(data), step):
                        writer.write(data[p : p + step])
                        await writer.drain()
                        await asyncio.sleep(0.25)
                else:
                    writer.write(head + body)
                status, headers, reply = await asyncio.wait_for(_reply(reader), 30)
                outcome = self._verdict(status, headers, reply, i) if kind == "slow" else f"status {status}"
                self._count(kind, outcome)
            except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError) as exc:
                self._count(kind, f"error: {type(exc).__name__}")
            finally:
                writer.close()
            await asyncio.sleep(rng.uniform(0.05, 0.3))

    async def _admin(self, checkpoint: str) -> tuple[int, dict]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            head, body = _request("/admin/reload", json.dumps({"checkpoint": checkpoint}).encode())
            writer.write(head + body)
            status, _, reply = await _reply(reader)
            return status, json.loads(reply)
        finally:
            writer.close()

    async def _swapper(self, stop: float, t0: float) -> None:
        turn, bad_offered = 0, False
        while True:
            await asyncio.sleep(self.swap_every)
            if time.monotonic() >= stop:
                return
            now = time.monotonic() - t0
            if not bad_offered and now >= self.seconds / 2:
                bad_offered = True
                start = time.monotonic()
                status, reply = await self._admin(self.paths["bad"])
                self.swaps.append(
                    {"t_s": now, "checkpoint": "bad (truncated)", "status": status, "s": time.monotonic() - start}
                )
                self.swaps[-1]["error"] = reply.get("error", "")
                continue
            turn += 1
            target = "b" if turn % 2 == 1 else "a"
            start = time.monotonic()
            status, reply = await self._admin(self.paths[target])
            version = reply.get("model", {}).get("version")
            self.swaps.append(
                {"t_s": now, "checkpoint": target, "status": status, "version": version, "s": time.monotonic() - start}
            )

    async def _memory(self, stop: float, t0: float) -> None:
        while time.monotonic() < stop:
            self.memory.append((time.monotonic() - t0, rss_kib(self.pid)))
            await asyncio.sleep(min(2.0, self.seconds / 20))
        self.memory.append((time.monotonic() - t0, rss_kib(self.pid)))

    async def run(self) -> None:
        t0 = time.monotonic()
        stop = t0 + self.seconds
        tasks = [self._valid_client(c, stop, t0) for c in range(self.clients)]
        tasks += [self._fault_client(stop, seed) for seed in range(4)]
        tasks += [self._swapper(stop, t0), self._memory(stop, t0)]
        await asyncio.gather(*tasks)


def rss_kib(pid: int) -> int:
    """Resident memory of process `pid` in KiB (VmRSS), 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _metrics_by_cause(port: int) -> dict[str, int]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    out: dict[str, int] = {}
    for m in re.finditer(r"^recengine_requests_total\{([^}]*)\} ([0-9.e+]+)$", text, re.M):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        key = f"{labels.get('endpoint')} {labels.get('status')} {labels.get('cause')}"
        out[key] = out.get(key, 0) + int(float(m.group(2)))
    return out


# ------------------------------------------------------------------------------------------------ report
def summarize(soak: Soak, by_cause: dict[str, int], window_s: float) -> dict:
    """The soak's figures (JSON-ready): valid requests by verdict, p50 / p99 per window, faults, swaps, memory."""
    verdicts: dict[str, int] = {}
    for *_, v in soak.valid:
        verdicts[v] = verdicts.get(v, 0) + 1
    windows = []
    for w0 in np.arange(0.0, soak.seconds, window_s):
        lat = [r[1] for r in soak.valid if w0 <= r[0] < w0 + window_s and r[2] == 200]
        if lat:
            windows.append(
                {
                    "from_s": float(w0),
                    "requests": len(lat),
                    "p50_ms": float(np.percentile(lat, 50) * 1e3),
                    "p99_ms": float(np.percentile(lat, 99) * 1e3),
                }
            )
    rss = [kib for _, kib in soak.memory if kib]
    first = [kib for t, kib in soak.memory if kib and t >= min(window_s, soak.seconds / 4)]
    return {
        "seconds": soak.seconds,
        "clients": soak.clients,
        "valid_requests": len(soak.valid),
        "valid_by_verdict": verdicts,
        "windows": windows,
        "faults": soak.faults,
        "server_by_status_and_cause": by_cause,
        "swaps": soak.swaps,
        "memory_kib": {
            "start": rss[0] if rss else 0,
            "after_first_window": first[0] if first else 0,
            "max": max(rss) if rss else 0,
            "end": rss[-1] if rss else 0,
        },
        "memory_samples": soak.memory,
    }


def markdown(result: dict) -> str:
    """The figures as the tables benchmarks/RESULTS.md shows."""
    mem = result["memory_kib"]
    v = result["valid_by_verdict"]
    lines = [
        f"{result['valid_requests']} valid requests from {result['clients']} clients in {result['seconds']:.0f} s: "
        + ", ".join(f"{k} {n}" for k, n in sorted(v.items())),
        "",
        "| window from (s) | requests | p50 ms | p99 ms |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {w['from_s']:.0f} | {w['requests']} | {w['p50_ms']:.1f} | {w['p99_ms']:.1f} |" for w in result["windows"]
    ]
    lines += ["", "| fault client | outcomes |", "|---|---|"]
    lines += [
        f"| {kind} | " + ", ".join(f"{o}: {n}" for o, n in sorted(out.items())) + " |"
        for kind, out in result["faults"].items()
    ]
    lines += ["", "| server: endpoint status cause | requests |", "|---|---|"]
    lines += [f"| {k} | {n} |" for k, n in sorted(result["server_by_status_and_cause"].items())]
    lines += ["", "| swap at (s) | checkpoint | status | version | seconds |", "|---|---|---|---|---|"]
    lines += [
        f"| {s['t_s']:.0f} | {s['checkpoint']} | {s['status']} | {s.get('version', '-')} | {s['s']:.2f} |"
        for s in result["swaps"]
    ]
    lines += [
        "",
        f"server RSS (MiB): start {mem['start'] / 1024:.0f}, "
        f"after the first window {mem['after_first_window'] / 1024:.0f}, "
        f"max {mem['max'] / 1024:.0f}, end {mem['end'] / 1024:.0f}",
    ]
    return "\n".join(lines)


# -------------------------------------------------------------------------------------------------- run
def run(
    checkpoint: str,
    seconds: float,
    *,
    clients: int = 32,
    swap_every: float = 60.0,
    window_s: float = 60.0,
    pool: int = 512,
    dtype: str = "float32",
) -> dict:
    """Soak a server of `checkpoint` for `seconds` (see the module docstring); returns `summarize`'s figures."""
    with tempfile.TemporaryDirectory(prefix="recengine-soak-") as tmp:
        paths = make_models(checkpoint, tmp)
        recs = {v: Recommender.load(paths[v], dtype=dtype) for v in ("a", "b")}
        histories = soak_histories(recs["a"].num_items, recs["a"].max_len, pool)
        expected = {
            v: torch.cat([rec.recommend(histories[i : i + 256], k=K).items for i in range(0, pool, 256)]).tolist()
            for v, rec in recs.items()
        }
        del recs
        port = free_port()
        code = (
            f"from recengine.serving.http import serve; serve({paths['a']!r}, '127.0.0.1', {port}, {dtype!r}, "
            "threads=1)"
        )
        server = subprocess.Popen([sys.executable, "-c", code], env=serving_environment("passive"))
        try:
            wait_healthy(port, server)
            soak = Soak(
                port, server.pid, paths, expected, histories, seconds=seconds, clients=clients, swap_every=swap_every
            )
            asyncio.run(soak.run())
            by_cause = _metrics_by_cause(port)
        finally:
            server.terminate()
            server.wait(timeout=30)
    result = summarize(soak, by_cause, window_s)
    result["machine"] = describe_machine()
    result["checkpoint"] = checkpoint
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m recengine.bench.soak", description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", required=True, help="a `recengine train` output dir or model file")
    p.add_argument("--seconds", type=float, default=600.0)
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--swap-every", type=float, default=60.0, help="seconds between model swaps")
    p.add_argument("--window", type=float, default=60.0, help="seconds per p50 / p99 window")
    p.add_argument("--json", default=None, help="write every figure here")
    args = p.parse_args(argv)
    if args.seconds <= 0 or args.clients < 1 or args.swap_every <= 0 or args.window <= 0:
        p.error("--seconds, --clients, --swap-every and --window must be positive")
    result = run(args.checkpoint, args.seconds, clients=args.clients, swap_every=args.swap_every, window_s=args.window)
    print(markdown(result))
    if args.json:
        write_json(args.json, result)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
