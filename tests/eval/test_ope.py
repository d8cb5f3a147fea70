"""Off-policy estimators as functions of per-decision arrays: hand-computed values, per decision and per session,
bad inputs, effective sample sizes and the light import."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from recengine.eval.ope import doubly_robust, effective_sample_size, importance_weights, ips, snips

R = np.array([1.0, 0.0, 1.0])
PI = np.array([0.5, 1.0, 0.2])
MU = np.array([0.25, 0.5, 0.4])
SESSIONS = np.array([7, 7, 3])  # two sessions: steps (w=2, w=2) and (w=0.5)
Q = np.full(3, 0.5)
V = np.full(3, 0.3)


def test_estimators_per_decision_by_hand():
    assert ips(R, PI, MU) == pytest.approx((2 + 0 + 0.5) / 3)
    assert snips(R, PI, MU) == pytest.approx(2.5 / 4.5)
    # mean(v + w (r - q)) = (1.3 - 0.7 + 0.55) / 3
    assert doubly_robust(R, PI, MU, Q, V) == pytest.approx(1.15 / 3)
    assert ips(R, PI, MU, clip=1.0) == pytest.approx((1 + 0 + 0.5) / 3)


def test_estimators_per_session_by_hand():
    # rho: session 7 -> [2, 4], session 3 -> [0.5]
    assert ips(R, PI, MU, sessions=SESSIONS) == pytest.approx((2 * 1 + 4 * 0 + 0.5 * 1) / 2)
    # step 0: (2*1 + 0.5*1) / (2 + 0.5) = 1; step 1: (4*0 + 0.5*0) / (4 + 0.5) = 0 (ended session keeps rho)
    assert snips(R, PI, MU, sessions=SESSIONS) == pytest.approx(1.0)
    # session 7: [2 (1 - .5) + .3] + [4 (0 - .5) + 2 * .3] = 1.3 - 1.4; session 3: .5 * .5 + .3 = .55
    assert doubly_robust(R, PI, MU, Q, V, sessions=SESSIONS) == pytest.approx((-0.1 + 0.55) / 2)


def test_estimators_reject_bad_input():
    with pytest.raises(ValueError, match="logging_probs"):
        ips(R, PI, np.array([0.5, 0.0, 0.5]))
    with pytest.raises(ValueError, match="entries"):
        snips(R, PI, MU[:2])
    with pytest.raises(ValueError, match="contiguous"):
        ips(R, PI, MU, sessions=np.array([1, 2, 1]))
    with pytest.raises(ValueError, match="NaN"):
        ips(np.array([np.nan, 0, 1]), PI, MU)
    with pytest.raises(ValueError, match="q_logged"):
        doubly_robust(R, PI, MU, Q[:2], V)
    np.testing.assert_allclose(importance_weights(PI, MU, clip=1.5), [1.5, 1.5, 0.5])


def test_effective_sample_size():
    assert effective_sample_size(np.ones(7)) == pytest.approx(7.0)
    assert effective_sample_size([2.0, 0.0, 0.0, 0.0]) == pytest.approx(1.0)


def test_importing_the_estimators_does_not_import_torch():
    code = "import sys, recengine.eval.ope, recengine.eval.ope_sessions; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
