"""MicroBatcher: concurrent requests share one `Recommender.recommend` call.

A request waits at most `max_wait_ms` for others to join it (not at all when `max_batch` are already waiting);
the batch, at most `max_batch` requests, then runs on one worker thread, off the event loop, so the server
keeps accepting while the model works, and the requests that arrive meanwhile form the next batch. Requests
are validated before they are queued, so one bad request never fails the others; requests with different k
run with the largest and each keeps its prefix (the lists are sorted best first, ties by the lower id, so a
shorter list is the prefix of a longer). If a shared call still fails (a row with too few unseen items for
the larger k), each request runs alone.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from recengine.serving.recommender import Recommender


@dataclass
class Answer:
    """One request's answer: items and scores, best first, and whether its history was cut to the context."""

    items: list[int]
    scores: list[float]
    truncated: bool


@dataclass
class _Pending:
    history: list[int]
    k: int
    exclude_seen: bool
    future: asyncio.Future = field(repr=False)


class MicroBatcher:
    """Queue requests from the event loop; answer them in shared `recommend` calls on one worker thread."""

    def __init__(self, recommender: Recommender, *, max_batch: int = 256, max_wait_ms: float = 2.0):
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise ValueError(f"max_batch: expected an int >= 1, got {max_batch!r}")
        if not max_wait_ms >= 0:
            raise ValueError(f"max_wait_ms: expected a number >= 0, got {max_wait_ms!r}")
        self.recommender = recommender
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self._queue: asyncio.Queue[_Pending] | None = None
        self._task: asyncio.Task | None = None
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recengine-serve")

    async def start(self) -> None:
        """Start the batching loop (call from the running event loop, e.g. in the app's lifespan)."""
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """Stop the loop and the worker thread; requests still queued are cancelled."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        while self._queue is not None and not self._queue.empty():
            self._queue.get_nowait().future.cancel()
        self._worker.shutdown(wait=True)

    async def submit(self, history: list[int], k: int, exclude_seen: bool) -> Answer:
        """The answer to one validated request, computed together with whatever arrives within max_wait."""
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(history, k, exclude_seen, future))
        return await future

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            # one timer per batch (not one per request): what arrives within max_wait joins, up to max_batch;
            # requests that arrived while the previous batch ran are already queued and join at once
            if self._queue.qsize() + 1 < self.max_batch and self.max_wait > 0:
                await asyncio.sleep(self.max_wait)
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            for group in (True, False):
                part = [p for p in batch if p.exclude_seen is group and not p.future.done()]
                if part:
                    results = await loop.run_in_executor(self._worker, self._answer, part)
                    for pending, result in zip(part, results):
                        if pending.future.done():
                            continue
                        if isinstance(result, Exception):
                            pending.future.set_exception(result)
                        else:
                            pending.future.set_result(result)

    def _answer(self, part: list[_Pending]) -> list[Answer | Exception]:
        k = max(p.k for p in part)
        try:
            rec = self.recommender.recommend([p.history for p in part], k, exclude_seen=part[0].exclude_seen)
        except (ValueError, IndexError, TypeError):
            if len(part) == 1:
                return [self._alone(part[0])]
            return [self._alone(p) for p in part]
        items, scores, truncated = rec.items.tolist(), rec.scores.tolist(), rec.truncated.tolist()
        return [Answer(items[i][: p.k], scores[i][: p.k], truncated[i]) for i, p in enumerate(part)]

    def _alone(self, pending: _Pending) -> Answer | Exception:
        try:
            rec = self.recommender.recommend([pending.history], pending.k, exclude_seen=pending.exclude_seen)
        except (ValueError, IndexError, TypeError) as exc:
            return exc
        return Answer(rec.items[0].tolist(), rec.scores[0].tolist(), bool(rec.truncated[0]))
