"""The counter-based draws the simulators share: a pure function of their counters, uniform, and users from the
pool."""

from __future__ import annotations

import numpy as np

from recengine.env.slot_kernels import draw_user, uniform


def test_uniform_is_a_pure_function_of_its_counters():
    draws = [uniform(np.uint64(5), 2, 3, 1) for _ in range(3)]
    assert draws[0] == draws[1] == draws[2]
    assert 0.0 <= draws[0] < 1.0
    assert uniform(np.uint64(5), 2, 3, 0) != draws[0]  # another purpose, another draw
    assert uniform(np.uint64(6), 2, 3, 1) != draws[0]  # another stream


def test_uniform_is_uniform():
    u = np.array([uniform(np.uint64(1), episode, 0, 0) for episode in range(20000)])
    assert abs(u.mean() - 0.5) < 0.01
    assert np.histogram(u, bins=10, range=(0.0, 1.0))[0].min() > 1800


def test_draw_user_draws_from_the_pool():
    pool = np.array([4, 9, 11], dtype=np.int64)
    users = [draw_user(np.uint64(seed), 0, pool) for seed in range(300)]
    assert set(users) == {4, 9, 11}
