"""recengine.serving.micro_batcher: admission by the estimated finish. A request whose deadline the work ahead of it
would pass is refused at once (Overloaded, cause "shed"); the others are answered; an idle batcher admits all; the
batch time is fitted as a fixed cost plus a cost per request."""

import asyncio
import time
from types import SimpleNamespace

import pytest
import torch

from recengine.serving.micro_batcher import MicroBatcher, Overloaded

CALL_S = 0.05


class SlowModel:
    """Answers every call after CALL_S seconds (the item ids echo the history's first item)."""

    def recommend(self, histories, k, exclude_seen=True):
        time.sleep(CALL_S)
        items = torch.tensor([[h[0]] * k for h in histories])
        return SimpleNamespace(items=items, scores=torch.zeros(items.shape), truncated=torch.zeros(len(histories)))


def test_requests_the_work_ahead_would_make_late_are_shed_at_once():
    async def run():
        batcher = MicroBatcher(SlowModel(), max_batch=1, max_wait_ms=0.0)
        await batcher.start()
        try:
            assert batcher.estimated_finish() == 0.0 and batcher.batch_time(1) is None
            await batcher.submit([0], 1, True)  # measures the time of a batch
            cost = batcher.batch_time(1)
            assert cost == pytest.approx(CALL_S, rel=0.8)
            deadline = time.monotonic() + 2.5 * cost
            tasks = [asyncio.create_task(batcher.submit([i], 1, True, deadline=deadline)) for i in range(1, 5)]
            t0 = time.monotonic()
            done = await asyncio.gather(*tasks, return_exceptions=True)
            return done, time.monotonic() - t0
        finally:
            await batcher.stop()

    done, _ = asyncio.run(run())
    # nothing ahead, then one request ahead: admitted (answered, or late on a very busy machine, but not shed)
    assert not any(isinstance(e, Overloaded) for e in done[:2]), done[:2]
    shed = done[2:]
    assert all(isinstance(e, Overloaded) and e.cause == "shed" for e in shed), shed
    assert "deadline" in str(shed[0])


def test_batch_time_fits_a_fixed_cost_plus_a_cost_per_request():
    batcher = MicroBatcher(SlowModel(), max_batch=64)
    for size in (1, 8, 32, 64, 16, 4):
        batcher._observe(size, 0.010 + 0.001 * size)
    assert batcher.batch_time(1) == pytest.approx(0.011, rel=1e-6)
    assert batcher.batch_time(64) == pytest.approx(0.074, rel=1e-6)


def test_without_a_deadline_or_a_measured_cost_nothing_is_shed():
    async def run():
        batcher = MicroBatcher(SlowModel(), max_batch=1, max_wait_ms=0.0)
        await batcher.start()
        try:
            soon = time.monotonic() + 0.001  # no cost measured yet: admitted, then late (not shed)
            first = await asyncio.gather(batcher.submit([7], 1, True, deadline=soon), return_exceptions=True)
            many = await asyncio.gather(*(batcher.submit([i], 1, True) for i in range(4)))
            return first, many
        finally:
            await batcher.stop()

    first, many = asyncio.run(run())
    assert not isinstance(first[0], Overloaded)
    assert [a.items for a in many] == [[0], [1], [2], [3]]
