"""The headroom over the large model: its arithmetic from paired sessions, the report's sections and the plot."""

from __future__ import annotations

import numpy as np
import pytest

from recengine.report import headroom as hr


def _returns(n: int = 2000, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    large = rng.poisson(2.0, n).astype(float)
    return {
        "large-model": large,
        hr.MYOPIC: large + rng.poisson(0.5, n),
        hr.LOOKAHEAD: large + rng.poisson(0.6, n),
        "hybrid-x": large + rng.binomial(1, 0.3, n),
        "popularity": large - 1.0,
    }


def rng_binomial(r: dict) -> np.ndarray:
    return np.random.default_rng(5).binomial(1, 0.2, len(r["large-model"]))


def test_headroom_value_of_planning_and_closed_share_from_paired_sessions():
    r = _returns()
    out = hr.headroom(r)
    look, large = r[hr.LOOKAHEAD], r["large-model"]
    assert out["headroom"]["diff"] == pytest.approx((look - large).mean())
    assert out["headroom"]["ci95"][0] > 0
    assert out["value_of_planning"]["diff"] == pytest.approx((look - r[hr.MYOPIC]).mean())
    assert out["headroom_relative"] == pytest.approx((look - large).mean() / large.mean())
    share = out["closed_share"]["hybrid-x"]
    assert share["identified"]
    assert share["share"] == pytest.approx((r["hybrid-x"] - large).mean() / (look - large).mean())
    assert share["ci95"][0] < share["share"] < share["ci95"][1]
    assert set(out["closed_share"]) == {"hybrid-x"}  # only RL on top of the large model
    r["large-model-logged"] = large + rng_binomial(r)
    out = hr.headroom(r)
    assert set(out["closed_share"]) == {"hybrid-x", "large-model-logged"}  # and the no-RL exclusion beside it
    assert hr.shares_of(["popularity", "large-model-logged", "hybrid-y"]) == ["large-model-logged", "hybrid-y"]
    assert hr.headroom({"large-model": large}) == {}


def test_a_headroom_that_may_be_zero_leaves_the_closed_share_unidentified():
    r = _returns()
    r[hr.LOOKAHEAD] = r["large-model"] + np.random.default_rng(3).normal(0, 1, r["large-model"].size)
    r[hr.LOOKAHEAD] -= (r[hr.LOOKAHEAD] - r["large-model"]).mean()  # no headroom at all
    out = hr.headroom(r)
    assert not out["closed_share"]["hybrid-x"]["identified"]
    assert "not identified" in hr._share_text(out["closed_share"]["hybrid-x"])


def test_the_main_headroom_pools_the_seeds_sessions():
    a, b = _returns(500, 1), _returns(500, 2)
    per_seed = {name: [{"session_returns": a[name]}, {"session_returns": b[name]}] for name in a}
    pooled = hr.main_headroom(per_seed)
    both = {name: np.concatenate([a[name], b[name]]) for name in a}
    assert pooled["headroom"]["diff"] == pytest.approx(hr.headroom(both)["headroom"]["diff"])
    assert pooled["headroom"]["n"] == 1000


def _entry(mean: float) -> dict:
    return {"avg_return": mean, "return_ci95": [mean - 0.1, mean + 0.1]}


def _results(tmp_path=None) -> dict:
    r = _returns()
    gap = hr.headroom(r)
    gap["mechanisms"] = {
        "sessions": 64,
        "rows": {hr.NO_MECHANISM_OFF: {**gap, "switched_off": {}}, "genre fatigue": {**gap, "switched_off": {}}},
    }
    stats = {
        "mean_length": 2.0,
        "share_of_length_1": 0.4,
        "consecutive_same_genre": 0.5,
        "any_pair_same_genre": 0.45,
        "slates_per_session": 5.0,
    }
    gap["mechanism_checks"] = {
        "real": {**stats, "mean_length": 30.0},
        "simulated_large_model": {hr.NO_MECHANISM_OFF: stats, "genre fatigue": stats},
        "fitted_session_model": {"mean_length": 31.0},
        "evolving_state": {
            "items": 100,
            "gain": 0.5,
            "gain_ci95": [0.4, 0.6],
            "log_prob_evolving": -5.0,
            "log_prob_frozen": -5.5,
        },
    }
    return {
        "agents": {n: _entry(float(np.mean(r[n]))) for n in ("large-model", "popularity", "hybrid-x")},
        "oracles": {n: _entry(float(np.mean(r[n]))) for n in hr.ORACLES},
        "headroom": gap,
    }


def test_the_report_sections_name_the_oracles_and_the_headroom():
    results = _results()
    answer = "\n".join(hr.answer_lines(results))
    assert "Headroom" in answer and "oracle" in answer and "| hybrid-x |" in answer
    assert f"{results['headroom']['closed_share']['hybrid-x']['share']:.0%}" in answer
    table = "\n".join(hr.mechanism_section(results))
    assert "## Where the headroom comes from" in table
    assert "| genre fatigue |" in table and "| none |" in table
    assert "consecutive items sharing a genre" in table and "30.000" in table
    assert hr.label(hr.LOOKAHEAD).startswith("oracle-lookahead (oracle")


def test_the_answer_gives_what_rl_adds_beyond_the_no_rl_exclusion():
    results = _results()
    assert "beyond the no-RL exclusion" not in "\n".join(hr.answer_lines(results))  # no such baseline run
    results["agents"]["hybrid-x"]["paired"] = {"large-model-logged": {"diff": 0.162, "ci95": [0.072, 0.252]}}
    answer = "\n".join(hr.answer_lines(results))
    assert "(hybrid − large-model-logged, paired" in answer and "hybrid-x +0.162 [+0.072, +0.252]" in answer


def test_the_plot_shows_the_agents_and_the_oracles(tmp_path):
    path = tmp_path / "headroom.png"
    assert hr.plot_returns(str(path), _results())
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not hr.plot_returns(str(tmp_path / "none.png"), {"agents": {}, "oracles": {}})
