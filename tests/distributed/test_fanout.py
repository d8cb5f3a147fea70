"""fan_out: the same results, in the same order, as the 1-process loop."""

from __future__ import annotations

import pytest
import torch

from recengine.distributed.fanout import fan_out


def noisy_return(seed: int) -> float:
    """A stand-in for one simulated session: its randomness comes from its seed only."""
    g = torch.Generator().manual_seed(seed)
    return float(torch.randn(100, generator=g).cumsum(0)[-1])


def fail_on_three(item: int) -> int:
    if item == 3:
        raise ValueError("session 3 failed")
    return item


def test_fan_out_over_processes_equals_the_single_process_loop():
    seeds = list(range(7))
    assert fan_out(noisy_return, seeds, processes=2) == [noisy_return(s) for s in seeds]


def test_error_in_fn_reaches_the_caller():
    with pytest.raises(ValueError, match="session 3"):
        fan_out(fail_on_three, range(5), processes=1)


def test_more_processes_than_items_and_no_items_are_fine():
    assert fan_out(noisy_return, [], processes=4) == []
    assert fan_out(fail_on_three, [1], processes=4) == [1]


@pytest.mark.parametrize("processes", [0, -1, 1.5, True])
def test_bad_process_count_raises(processes):
    with pytest.raises(ValueError, match="processes"):
        fan_out(noisy_return, [1], processes=processes)
