"""run_local: values in rank order, a failing rank reported, nothing hangs past the timeout."""

from __future__ import annotations

import time

import pytest
import torch.distributed as dist

from recengine.distributed.launch import WorldFailed, WorldTimeout, run_local


def rank_and_world(rank: int, world_size: int) -> tuple[int, int]:
    return rank, dist.get_world_size()


def raise_value_error(rank: int, world_size: int) -> None:
    raise ValueError("bad thing on this rank")


def sleep_long(rank: int, world_size: int) -> None:
    time.sleep(120)


def test_values_come_back_in_rank_order(world2_run):
    """The session's 2-rank world (conftest.py): each rank returned (its rank, the world size)."""
    assert world2_run["returned"] == [(0, 2), (1, 2)]


def test_a_raising_rank_is_reported_with_its_error():
    with pytest.raises(WorldFailed, match="ValueError: bad thing on this rank") as info:
        run_local(raise_value_error, 1, timeout_s=120)
    assert sorted(info.value.errors) == [0]


def test_a_world_past_its_timeout_is_killed():
    with pytest.raises(WorldTimeout, match="did not finish within 5"):
        run_local(sleep_long, 1, timeout_s=5)


@pytest.mark.parametrize("kwargs", [dict(world_size=0), dict(world_size=1, timeout_s=0)])
def test_bad_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        run_local(rank_and_world, **kwargs)
