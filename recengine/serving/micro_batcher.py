"""MicroBatcher: concurrent requests share one `Recommender.recommend` call.

A request waits at most `max_wait_ms` for others to join it (not at all when `max_batch` are already waiting);
the batch, at most `max_batch` requests, then runs on one worker thread, off the event loop, so the server
keeps accepting while the model works, and the requests that arrive meanwhile form the next batch. Requests
are validated before they are queued, so one bad request never fails the others; requests with different k
run with the largest and each keeps its prefix (the lists are sorted best first, ties by the lower id, so a
shorter list is the prefix of a longer). If a shared call still fails (a row with too few unseen items for
the larger k), each request runs alone.

Overload: at most `max_queue` requests wait; past that `submit` raises Overloaded at once (the server answers
503 with Retry-After) rather than letting the wait grow without limit. A request with a deadline is also refused
at once when the work ahead of it would not let it finish in time: the batcher fits the model's time per batch
as a + b * size over the batches it ran (least squares, recent batches weighing most) and estimates when a new
request would be answered: what is left of the running batch, the full batches queued ahead, then the batch it
joins. So under overload the model only works on requests it can still answer by their
deadline, and the admitted ones keep their latency, instead of every request waiting in a long queue and many
timing out after the model spent time on them. With nothing queued or running a request is always admitted (so
the average keeps being measured). A request may carry a deadline
(time.monotonic seconds): one still waiting when it passes is dropped before the model runs (DeadlineExceeded,
ran=False: 503), one whose batch is running when it passes is answered DeadlineExceeded(ran=True) (504) without
waiting for the batch. Each request carries the model it is to run on (`submit(..., model=)`; default the
batcher's): a batch holds requests of one model, so a server that swaps models finishes every request on the
model it took when it arrived.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from recengine.serving.recommender import Recommender


@dataclass
class Answer:
    """One request's answer: items and scores, best first, and whether its history was cut to the context."""

    items: list[int]
    scores: list[float]
    truncated: bool


class Overloaded(RuntimeError):
    """The request was not queued (answer 503, retry later): the queue in front of the model is full (`cause`
    "queue_full"), or the wait ahead of it would pass its deadline ("shed")."""

    def __init__(self, message: str, cause: str = "queue_full"):
        super().__init__(message)
        self.cause = cause


class DeadlineExceeded(TimeoutError):
    """A request's deadline passed: before its batch ran (`ran` False: it never reached the model) or while
    it ran (`ran` True)."""

    def __init__(self, ran: bool):
        super().__init__(
            "the request's deadline passed while the model answered it"
            if ran
            else "the request's deadline passed before the model could run it"
        )
        self.ran = ran


@dataclass
class _Pending:
    history: list[int]
    k: int
    exclude_seen: bool
    future: asyncio.Future = field(repr=False)
    model: Recommender | None = field(default=None, repr=False)
    deadline: float | None = None
    started: bool = False


class MicroBatcher:
    """Queue requests from the event loop; answer them in shared `recommend` calls on one worker thread."""

    def __init__(
        self,
        recommender: Recommender | None,
        *,
        max_batch: int = 256,
        max_wait_ms: float = 2.0,
        max_queue: int | None = None,
        on_batch: Callable[[int], None] | None = None,
        shed: bool = True,
    ):
        """`recommender`: the model requests run on unless `submit` names one; `max_queue`: how many requests
        may wait (None: no bound); `on_batch(size)` is called on the event loop for every batch run; `shed`:
        refuse at once a request whose deadline the work ahead of it would pass (False: admit by count only)."""
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise ValueError(f"max_batch: expected an int >= 1, got {max_batch!r}")
        if not max_wait_ms >= 0:
            raise ValueError(f"max_wait_ms: expected a number >= 0, got {max_wait_ms!r}")
        if max_queue is not None and (isinstance(max_queue, bool) or not isinstance(max_queue, int) or max_queue < 1):
            raise ValueError(f"max_queue: expected an int >= 1 or None, got {max_queue!r}")
        self.recommender = recommender
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.shed = shed
        self._on_batch = on_batch
        self._queue: asyncio.Queue[_Pending] | None = None
        self._task: asyncio.Task | None = None
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recengine-serve")
        # decayed sums over the batches run (weight, size, seconds, size^2, size * seconds): the fit of batch_time
        self._fit = (0.0, 0.0, 0.0, 0.0, 0.0)
        self._running: tuple[float, int] | None = None  # (start, requests) of the batch the model runs now

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

    @property
    def queue_depth(self) -> int:
        """How many requests wait for the model now."""
        return 0 if self._queue is None else self._queue.qsize()

    def _observe(self, size: int, seconds: float) -> None:
        w, sn, st, snn, snt = (0.9 * x for x in self._fit)  # a batch's weight halves after about 7 more
        self._fit = (w + 1.0, sn + size, st + seconds, snn + size * size, snt + size * seconds)

    def batch_time(self, size: int) -> float | None:
        """The model's expected seconds for a batch of `size` requests, a + b * size fitted over the batches it
        ran (None before any). With batches all of one size the fit is the mean time, whatever the size."""
        w, sn, st, snn, snt = self._fit
        if w == 0.0:
            return None
        mean_n, mean_t = sn / w, st / w
        var = snn / w - mean_n * mean_n
        b = max(0.0, (snt / w - mean_n * mean_t) / var) if var > 1e-6 * max(1.0, mean_n * mean_n) else 0.0
        return max(0.0, mean_t - b * mean_n) + b * size

    def estimated_finish(self, requests: int = 1) -> float:
        """Seconds from now until `requests` queued now would be answered: what is left of the running batch,
        the full batches queued ahead, then the batch they join (0 before any batch has run)."""
        if self.batch_time(1) is None:
            return 0.0
        left = 0.0
        if self._running is not None:
            start, size = self._running
            left = max(0.0, self.batch_time(size) - (time.monotonic() - start))
        full, rest = divmod(self.queue_depth, self.max_batch)
        return left + full * self.batch_time(self.max_batch) + self.batch_time(rest + requests)

    def check_admission(self, requests: int, seconds_left: float) -> None:
        """Overloaded (cause "shed") when shedding is on, the model is busy and `requests` queued now would be
        answered after `seconds_left` more seconds: a cheap test that also runs before a request is parsed."""
        busy = self._running is not None or self.queue_depth > 0
        if self.shed and busy:
            finish = self.estimated_finish(requests)
            if finish > seconds_left:
                raise Overloaded(
                    f"the model is busy: it would answer in about {finish * 1e3:.0f} ms, after the request's deadline",
                    cause="shed",
                )

    async def submit(
        self,
        history: list[int],
        k: int,
        exclude_seen: bool,
        *,
        model: Recommender | None = None,
        deadline: float | None = None,
    ) -> Answer:
        """The answer to one validated request, computed together with whatever arrives within max_wait."""
        return (await self.submit_many([history], k, exclude_seen, model=model, deadline=deadline))[0]

    async def submit_many(
        self,
        histories: list[list[int]],
        k: int,
        exclude_seen: bool,
        *,
        model: Recommender | None = None,
        deadline: float | None = None,
    ) -> list[Answer]:
        """The answers to validated requests that are admitted together or not at all: Overloaded when they
        do not all fit in the queue; DeadlineExceeded when `deadline` (time.monotonic) passes first."""
        if self.max_queue is not None and self._queue.qsize() + len(histories) > self.max_queue:
            raise Overloaded(f"the queue is full ({self.max_queue} requests wait for the model)")
        if deadline is not None:
            self.check_admission(len(histories), deadline - time.monotonic())
        loop = asyncio.get_running_loop()
        model = self.recommender if model is None else model
        pending = [_Pending(h, k, exclude_seen, loop.create_future(), model, deadline) for h in histories]
        for p in pending:
            self._queue.put_nowait(p)
        gathered = asyncio.gather(*(p.future for p in pending))
        if deadline is None:
            return await gathered
        try:
            return await asyncio.wait_for(gathered, max(0.0, deadline - time.monotonic()))
        except (asyncio.TimeoutError, TimeoutError):
            raise DeadlineExceeded(any(p.started for p in pending)) from None

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
            now = time.monotonic()
            for p in batch:  # past their deadline before the model runs: dropped (503, never ran)
                if p.deadline is not None and p.deadline <= now and not p.future.done():
                    p.future.set_exception(DeadlineExceeded(ran=False))
            groups: dict[tuple[int, bool], list[_Pending]] = {}
            for p in batch:
                if not p.future.done():
                    groups.setdefault((id(p.model), p.exclude_seen), []).append(p)
            for part in groups.values():
                part = [p for p in part if not p.future.done()]
                if part:
                    for p in part:
                        p.started = True
                    if self._on_batch is not None:
                        self._on_batch(len(part))
                    start = time.monotonic()
                    self._running = (start, len(part))
                    try:
                        results = await loop.run_in_executor(self._worker, self._answer, part)
                    finally:
                        self._running = None
                    self._observe(len(part), time.monotonic() - start)
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
            rec = part[0].model.recommend([p.history for p in part], k, exclude_seen=part[0].exclude_seen)
        except (ValueError, IndexError, TypeError):
            if len(part) == 1:
                return [self._alone(part[0])]
            return [self._alone(p) for p in part]
        items, scores, truncated = rec.items.tolist(), rec.scores.tolist(), rec.truncated.tolist()
        return [Answer(items[i][: p.k], scores[i][: p.k], truncated[i]) for i, p in enumerate(part)]

    def _alone(self, pending: _Pending) -> Answer | Exception:
        try:
            rec = pending.model.recommend([pending.history], pending.k, exclude_seen=pending.exclude_seen)
        except (ValueError, IndexError, TypeError) as exc:
            return exc
        return Answer(rec.items[0].tolist(), rec.scores[0].tolist(), bool(rec.truncated[0]))
