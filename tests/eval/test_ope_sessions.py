"""The session layout of per-decision logs and the cumulative importance ratios over a session's steps."""

from __future__ import annotations

import numpy as np
import pytest

from recengine.eval.ope_sessions import cumulative_ratios, session_layout


def test_layout_numbers_sessions_and_steps_in_order():
    idx, step, S, T = session_layout(np.array([7, 7, 3, 5, 5, 5]), 6)
    np.testing.assert_array_equal(idx, [0, 0, 1, 2, 2, 2])
    np.testing.assert_array_equal(step, [0, 1, 0, 0, 1, 2])
    assert (S, T) == (3, 3)


def test_cumulative_ratios_multiply_along_a_session_and_hold_one_where_it_ended():
    idx, step, S, T = session_layout(np.array([7, 7, 3]), 3)
    np.testing.assert_allclose(cumulative_ratios(np.array([2.0, 2.0, 0.5]), idx, step, S, T), [[2.0, 4.0], [0.5, 0.5]])


@pytest.mark.parametrize(
    "sessions,n,message",
    [([1, 2, 1], 3, "contiguous"), ([1, 1], 3, "entries"), ([], 0, "no logged steps")],
)
def test_layout_rejects_bad_sessions(sessions, n, message):
    with pytest.raises(ValueError, match=message):
        session_layout(np.array(sessions), n)
