"""recengine.report.summary: a comparison report opens with five summary lines; a smoke run's with its banner and
no verdict, a full run's with the verdict on RL and the targets met."""

import pytest

from recengine.report import writer
from recengine.report.summary import SMOKE_BANNER, is_smoke, opening, summary_lines


def _results(quick: bool) -> dict:
    diff = {"diff": 0.1, "ci95": [0.02, 0.18], "n": 100}
    agents = {
        "popularity": {"avg_return": 0.9, "return_ci95": [0.8, 1.0], "paired": {}},
        "large-model": {"avg_return": 1.1, "return_ci95": [1.0, 1.2], "paired": {}},
        "hybrid-reinforce": {"avg_return": 1.2, "return_ci95": [1.1, 1.3], "paired": {"large-model": diff}},
    }
    return {
        "meta": {
            "dataset": "synthetic",
            "num_users": 50,
            "num_items": 40,
            "seeds": 1,
            "eval_sessions": 128,
            "wall_seconds": 12.0,
            "machine": "a test machine",
            "quick": quick,
            "slate_size": 10,
            "seed": 0,
            "simulator": "a simulator",
            "config": {"curve_sessions": 64},
        },
        "agents": agents,
        "rl_vs_large_model": {
            "hybrid-reinforce": {
                "checks": {"main simulator": {**diff, "outcome": "beats"}},
                "beats_in": ["main simulator"],
                "seeds": 1,
                "summary": "hybrid-reinforce beats the large model in 1 of 1 checks",
            }
        },
        "simulator_validation": {"checks": {"a": True, "b": False, "c": True}},
        "targets": {"a hybrid beats the large model alone (return/session)": True, "DQN learns": None},
        "target_evidence": {},
        "plots": [],
    }


@pytest.mark.parametrize("quick", [True, False])
def test_five_lines_whatever_the_run(quick):
    lines = summary_lines(_results(quick))
    assert len(lines) == 5 and all(line.startswith("- **") for line in lines)
    assert "hybrid-reinforce, 1.200 [1.100, 1.300]" in lines[1] and "the large model 1.100" in lines[1]
    assert "2 of 3 validation checks" in lines[3]


def test_a_full_run_states_its_verdicts():
    results = _results(False)
    lines = summary_lines(results)
    assert "beats the large model alone in every check" in lines[2]
    assert "1 of 1 measured targets met" in lines[4]
    assert SMOKE_BANNER not in opening(results) and not is_smoke(results)
    text = writer.markdown({**results, "simulator_validation": None})  # the section has its own tests
    assert "## Targets" in text and "beats the large model alone" in text


def test_a_smoke_run_has_the_banner_and_no_verdict():
    results = _results(True)
    assert opening(results)[0] == SMOKE_BANNER and is_smoke(results)
    text = writer.markdown({**results, "simulator_validation": None})
    assert text.splitlines()[2] == SMOKE_BANNER
    for verdict in ("beats", "not met", "does not beat", "## Targets"):
        assert verdict not in text, verdict
    assert "| hybrid-reinforce | main simulator | +0.100 [+0.020, +0.180] |" in text
