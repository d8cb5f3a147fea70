"""A cheap HTTP load generator: `clients` keep-alive connections on one asyncio loop, in its own process.

    python -m recengine.bench.http_load --port 8000 --requests requests.json --out replies.json [--clients 32]

`requests.json` holds a list of JSON request bodies for ``POST /recommend``; each client sends its share one
after another on its own connection (a closed loop: 32 clients keep at most 32 requests in flight). The
replies (parsed JSON, in request order), each request's latency in seconds and the wall time go to `--out`.

With ``--rate R`` the load is an open loop instead: request i is due at the i-th arrival of a Poisson process of
R requests/s and goes out then on an idle keep-alive connection (a new one when none is idle, at most
`--clients` of them), whatever the server's pace; its latency counts from when it was due, so time spent waiting
for a connection is part of it (an overloaded server cannot hide its queue by slowing the clients down). A request
sent on a kept-alive connection that the server had closed meanwhile (its idle timeout) goes again on a new one.

Why a separate process with hand-written HTTP/1.1: the load generator shares the machine with the server it
measures. Client threads with http.client spend more CPU per request than a small server does, and in the
server's process they would also hold its GIL; one event loop writing pre-encoded requests and reading
Content-Length bodies costs a fraction of that.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from recengine._atomic import atomic_path


def _request_bytes(host: str, body: bytes) -> bytes:
    head = (
        f"POST /recommend HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _read_reply(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """(status, body) of one HTTP/1.1 response with a Content-Length."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    return status, await reader.readexactly(length)


async def run_load(host: str, port: int, bodies: list[bytes], clients: int) -> dict:
    """Send every body once over `clients` connections; {replies, statuses, latencies_s, wall_s}."""
    count = len(bodies)
    requests = [_request_bytes(host, b) for b in bodies]
    replies: list[bytes] = [b""] * count
    statuses = [0] * count
    latencies = [0.0] * count

    async def client(first: int) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for i in range(first, count, clients):
                t0 = time.perf_counter()
                writer.write(requests[i])
                statuses[i], replies[i] = await _read_reply(reader)
                latencies[i] = time.perf_counter() - t0
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(client(c) for c in range(min(clients, count))))
    wall = time.perf_counter() - t0
    return {
        "replies": [json.loads(r) for r in replies],
        "statuses": statuses,
        "latencies_s": latencies,
        "wall_s": wall,
    }


async def run_open_loop(host: str, port: int, bodies: list[bytes], rate: float, connections: int, seed: int = 0):
    """Send body i at the i-th arrival of a Poisson process of `rate` per second over at most `connections`
    keep-alive connections; {replies, statuses, latencies_s (from when each was due), wall_s}."""
    import random

    count = len(bodies)
    requests = [_request_bytes(host, b) for b in bodies]
    rng = random.Random(seed)
    due, t = [], 0.0
    for _ in range(count):
        t += rng.expovariate(rate)
        due.append(t)
    replies: list[bytes] = [b"{}"] * count
    statuses = [0] * count
    latencies = [0.0] * count
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    slots = asyncio.Semaphore(connections)
    t0 = time.perf_counter()

    async def one(i: int) -> None:
        await asyncio.sleep(max(0.0, t0 + due[i] - time.perf_counter()))
        async with slots:
            # a kept-alive connection the server has since closed (its idle timeout) fails before any reply byte:
            # the request goes again on a new connection, once, as HTTP clients do; a new one's failure counts (-1)
            reused = bool(idle)
            while True:
                conn = idle.pop() if reused else await asyncio.open_connection(host, port)
                reader, writer = conn
                try:
                    writer.write(requests[i])
                    statuses[i], replies[i] = await _read_reply(reader)
                except (OSError, asyncio.IncompleteReadError) as exc:
                    writer.close()
                    stale = isinstance(exc, asyncio.IncompleteReadError) and not exc.partial
                    if reused and (stale or isinstance(exc, ConnectionError)):
                        reused = False
                        continue
                    statuses[i] = -1
                else:
                    idle.append(conn)
                break
            latencies[i] = time.perf_counter() - (t0 + due[i])

    await asyncio.gather(*(one(i) for i in range(count)))
    wall = time.perf_counter() - t0
    for _, writer in idle:
        writer.close()
    return {
        "replies": [json.loads(r) if r else {} for r in replies],
        "statuses": statuses,
        "latencies_s": latencies,
        "wall_s": wall,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m recengine.bench.http_load", description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--requests", required=True, help="a JSON file: a list of request bodies")
    p.add_argument("--out", required=True, help="where to write replies, latencies and wall time (JSON)")
    p.add_argument("--clients", type=int, default=32, help="connections (with --rate: at most this many)")
    p.add_argument("--rate", type=float, default=None, help="an open loop: requests per second (Poisson arrivals)")
    args = p.parse_args(argv)
    if args.clients < 1:
        p.error(f"--clients: expected >= 1, got {args.clients}")
    if args.rate is not None and not args.rate > 0:
        p.error(f"--rate: expected > 0, got {args.rate}")
    with open(args.requests) as f:
        bodies = [json.dumps(b, separators=(",", ":")).encode() for b in json.load(f)]
    if args.rate is None:
        result = asyncio.run(run_load(args.host, args.port, bodies, args.clients))
    else:
        result = asyncio.run(run_open_loop(args.host, args.port, bodies, args.rate, args.clients))
    with atomic_path(args.out) as tmp, open(tmp, "w") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
