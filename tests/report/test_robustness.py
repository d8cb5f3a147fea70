"""The robustness checks' pure parts: the halves, the paired summary of a variant and the verdict."""

import numpy as np
import pytest

from recengine.report.robustness import disjoint_halves, overall, summarize, verdict


def test_disjoint_halves_cover_every_user_once():
    a, b = disjoint_halves(11, seed=3)
    assert a.size == 5 and b.size == 6
    np.testing.assert_array_equal(np.sort(np.concatenate([a, b])), np.arange(11))


def test_summarize_pairs_every_hybrid_with_the_large_model():
    returns = {"large-model": [1.0, 2.0, 3.0, 2.0], "hybrid-dqn": [2.0, 3.0, 4.0, 3.5]}
    out = summarize(returns, 0.95, "a check")
    d = out["paired"]["hybrid-dqn"]
    assert d["diff"] == pytest.approx(1.125) and d["ci95"][0] < d["diff"] < d["ci95"][1]
    assert set(out["paired"]) == {"hybrid-dqn"} and out["description"] == "a check"


def _paired(diff, lo, hi, seeds=None):
    d = {"diff": diff, "ci95": [lo, hi]}
    if seeds:
        d["seed_ci95"] = seeds
    return d


@pytest.mark.parametrize(
    "main, outcome",
    [
        (_paired(0.5, 0.2, 0.8), "beats"),
        (_paired(-0.5, -0.8, -0.2), "loses to"),
        (_paired(0.1, -0.1, 0.3), "does not separate from"),
        (_paired(0.5, 0.2, 0.8, seeds=[-0.3, 1.2]), "does not separate from"),  # the seeds' interval disagrees
    ],
)
def test_the_main_check_outcome(main, outcome):
    agents = {"hybrid-dqn": {"paired": {"large-model": main}}}
    assert verdict(agents, {})["hybrid-dqn"]["checks"]["main simulator"]["outcome"] == outcome


def test_the_verdict_names_the_checks_a_hybrid_fails():
    agents = {"hybrid-reinforce": {"paired": {"large-model": _paired(0.5, 0.2, 0.8)}}}
    robust = {"variants": {"second simulator": {"paired": {"hybrid-reinforce": _paired(-0.2, -0.4, -0.1)}}}}
    v = verdict(agents, robust)["hybrid-reinforce"]
    assert v["beats_in"] == ["main simulator"]
    assert "1 of 2 checks" in v["summary"] and "second simulator: loses to it" in v["summary"]


@pytest.mark.parametrize(
    "outcomes, words",
    [
        (["beats", "beats"], "in every check"),
        (["loses to", "does not separate from"], "does not beat"),
        (["beats", "loses to"], "not robust"),
    ],
)
def test_overall_says_plainly_whether_rl_beats_the_large_model(outcomes, words):
    verdicts = {"hybrid-dqn": {"checks": {f"c{i}": {"outcome": o} for i, o in enumerate(outcomes)}}}
    assert words in overall(verdicts)
