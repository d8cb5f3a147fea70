"""Fan independent work (simulated evaluation sessions, rollouts) out over local processes.

    returns = fan_out(evaluate_session, session_seeds, processes=4)   # == [evaluate_session(s) for s in seeds]

The items are split into contiguous chunks, one per process, and the results come back in the items'
order, so a function that draws its randomness from its item (a seed, a torch.Generator built from it)
gives exactly the 1-process results. `fn` must be picklable (a module-level function or a
functools.partial of one) and so must the items and results. Processes are spawned (fresh interpreters:
no forked thread pools or CUDA contexts), each with its share of the cores.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor

import torch

__all__ = ["fan_out"]


def _set_threads(threads: int) -> None:
    torch.set_num_threads(threads)  # a worker process of ours: its share of the cores


def _run_chunk(fn: Callable, chunk: Sequence) -> list:
    return [fn(item) for item in chunk]


def fan_out(fn: Callable, items: Sequence, *, processes: int | None = None, timeout_s: float | None = None) -> list:
    """[fn(item) for item in items], computed by `processes` spawned processes (default: one per core, at most
    one per item; 1 runs in this process). Raises what `fn` raised; TimeoutError past `timeout_s`."""
    items = list(items)
    if processes is None:
        processes = os.cpu_count() or 1
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
        raise ValueError(f"processes: expected an int >= 1, got {processes!r}")
    processes = min(processes, max(1, len(items)))
    if processes == 1:
        return _run_chunk(fn, items)
    bounds = [len(items) * p // processes for p in range(processes + 1)]
    chunks = [items[lo:hi] for lo, hi in zip(bounds, bounds[1:])]
    threads = max(1, (os.cpu_count() or 1) // processes)
    with ProcessPoolExecutor(
        processes, mp_context=mp.get_context("spawn"), initializer=_set_threads, initargs=(threads,)
    ) as pool:
        futures = [pool.submit(_run_chunk, fn, chunk) for chunk in chunks]
        results = []
        for future in futures:
            results.extend(future.result(timeout=timeout_s))
    return results
