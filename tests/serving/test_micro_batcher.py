"""recengine.serving.micro_batcher: admission by the estimated wait. A request whose deadline the work ahead of it
would pass is refused at once (Overloaded, cause "shed"); the others are answered; an idle batcher admits all."""

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
            assert batcher.estimated_wait() == 0.0
            await batcher.submit([0], 1, True)  # measures the cost of a request
            assert batcher.cost_s == pytest.approx(CALL_S, rel=0.8)
            deadline = time.monotonic() + 2.2 * batcher.cost_s
            tasks = [asyncio.create_task(batcher.submit([i], 1, True, deadline=deadline)) for i in range(1, 5)]
            t0 = time.monotonic()
            done = await asyncio.gather(*tasks, return_exceptions=True)
            return done, time.monotonic() - t0, batcher.cost_s
        finally:
            await batcher.stop()

    done, _, _ = asyncio.run(run())
    # nothing ahead, then one request ahead: admitted (answered, or late on a very busy machine, but not shed)
    assert not any(isinstance(e, Overloaded) for e in done[:2]), done[:2]
    shed = done[2:]
    assert all(isinstance(e, Overloaded) and e.cause == "shed" for e in shed), shed
    assert "deadline" in str(shed[0])


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
