"""Start a world of local processes on gloo over 127.0.0.1: for tests, benchmarks and single-machine runs.

    results = run_local(train_shard, world_size=2, args=(config,), timeout_s=60)   # [rank 0's, rank 1's]

`fn(rank, world_size, *args)` runs in each of `world_size` fresh (spawned) processes after
`init_process_group("gloo")` with the given collective timeout, and its picklable return value comes back in
rank order. The rendezvous is a TCPStore the parent opens on a free port, so parallel runs never collide.
Nothing hangs: past `timeout_s` every process is killed and WorldTimeout is raised; a rank that raises or
dies makes WorldFailed carry what each rank reported. Multi-machine runs use torchrun instead.
"""

from __future__ import annotations

import datetime
import multiprocessing as mp
import os
import pickle
import queue
import time
import traceback
from collections.abc import Callable, Sequence

import torch
import torch.distributed as dist

__all__ = ["run_local", "WorldFailed", "WorldTimeout"]


class WorldFailed(RuntimeError):
    """Some rank raised or died; `errors` maps rank -> what it reported (or how it ended), `values` holds the
    return values of the ranks that finished."""

    def __init__(self, errors: dict[int, str], values: dict[int, object] | None = None):
        self.errors = errors
        self.values = values or {}
        detail = "\n".join(f"rank {r}: {msg}" for r, msg in sorted(errors.items()))
        super().__init__(f"{len(errors)} rank(s) failed:\n{detail}")


class WorldTimeout(TimeoutError):
    """The world did not finish within `timeout_s`; its processes were killed."""


def _worker(
    fn: Callable,
    rank: int,
    world_size: int,
    port: int,
    args: Sequence,
    collective_timeout_s: float,
    threads: int,
    results: mp.Queue,
) -> None:
    try:
        torch.set_num_threads(threads)  # this process is ours: share the cores between the ranks
        store = dist.TCPStore(
            "127.0.0.1", port, world_size + 1, is_master=False, timeout=datetime.timedelta(seconds=collective_timeout_s)
        )
        dist.init_process_group(
            "gloo",
            store=store,
            rank=rank,
            world_size=world_size,
            timeout=datetime.timedelta(seconds=collective_timeout_s),
        )
        try:
            value = fn(rank, world_size, *args)
        finally:
            dist.destroy_process_group()
        # pickled here, by value: the queue's own pickler would share tensors through file descriptors that
        # vanish when this process exits
        results.put((rank, True, pickle.dumps(value)))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises
        results.put((rank, False, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=6)}"))


def run_local(
    fn: Callable,
    world_size: int,
    args: Sequence = (),
    *,
    timeout_s: float = 120.0,
    collective_timeout_s: float = 30.0,
    threads_per_rank: int | None = None,
) -> list:
    """Run `fn(rank, world_size, *args)` on `world_size` local gloo ranks; their return values in rank order.

    `fn` and `args` must be picklable (a module-level function). `threads_per_rank` defaults to the cores
    shared evenly (at least 1). Raises WorldFailed if any rank raised or died, WorldTimeout past `timeout_s`.
    """
    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"world_size: expected an int >= 1, got {world_size!r}")
    if not timeout_s > 0 or not collective_timeout_s > 0:
        raise ValueError(f"timeout_s / collective_timeout_s: must be > 0, got {timeout_s}, {collective_timeout_s}")
    threads = threads_per_rank or max(1, (os.cpu_count() or 1) // world_size)
    store = dist.TCPStore(
        "127.0.0.1",
        0,
        world_size + 1,
        is_master=True,
        wait_for_workers=False,
        timeout=datetime.timedelta(seconds=collective_timeout_s),
    )
    ctx = mp.get_context("spawn")
    results: mp.Queue = ctx.Queue()
    procs = [
        ctx.Process(
            target=_worker,
            args=(fn, r, world_size, store.port, tuple(args), collective_timeout_s, threads, results),
            daemon=True,
        )
        for r in range(world_size)
    ]
    for p in procs:
        p.start()
    deadline = time.monotonic() + timeout_s
    values: dict[int, object] = {}
    errors: dict[int, str] = {}
    seen_dead: dict[int, float] = {}
    try:
        while len(values) + len(errors) < world_size:
            try:
                rank, ok, value = results.get(timeout=0.2)
            except queue.Empty:
                now = time.monotonic()
                for r, p in enumerate(procs):
                    # a rank that died without reporting (killed, os._exit, segfault), after a grace period
                    # for a report still in flight
                    if p.exitcode is not None and r not in values and r not in errors:
                        if now - seen_dead.setdefault(r, now) > 1.0:
                            errors[r] = f"process ended with exit code {p.exitcode} without reporting"
                if time.monotonic() > deadline:
                    raise WorldTimeout(
                        f"the world of {world_size} ranks did not finish within {timeout_s} s "
                        f"(finished: {sorted(values)}, failed: {sorted(errors)})"
                    ) from None
                continue
            if ok:
                values[rank] = pickle.loads(value)
            else:
                errors[rank] = value
    finally:
        for p in procs:
            p.join(timeout=max(0.0, min(5.0, deadline - time.monotonic())))
            if p.is_alive():
                p.kill()
                p.join()
        del store
    if errors:
        raise WorldFailed({r: str(m) for r, m in errors.items()}, values)
    return [values[r] for r in range(world_size)]
