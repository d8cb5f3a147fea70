"""Smoke run of `recengine compare --quick` on synthetic data: the files it writes and what they hold."""
import json
import math

import pytest

from recengine.cli import main

AGENTS = ["random", "popularity", "large-model", "dqn", "reinforce", "hybrid-dqn", "hybrid-reinforce"]
ENCODER_AGENTS = ["large-model", "dqn", "reinforce", "hybrid-dqn", "hybrid-reinforce"]
LEARNERS = ["dqn", "reinforce", "hybrid-dqn", "hybrid-reinforce"]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    assert main(["compare", "--quick", "--dataset", "synthetic", "--out", str(out), "--threads", "1"]) == 0
    return out


def test_files_written(quick_run):
    for name in ("report.md", "results.json", "learning_curves.png"):
        assert (quick_run / name).stat().st_size > 0, name
    assert (quick_run / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_results_json_has_every_agent_and_figure(quick_run):
    results = json.loads((quick_run / "results.json").read_text())
    meta = results["meta"]
    assert meta["dataset"] == "synthetic" and meta["quick"] is True and meta["fallback"] is None
    assert list(results["agents"]) == AGENTS
    for name, entry in results["agents"].items():
        for key in ("avg_return", "ctr", "coverage", "diversity"):
            assert isinstance(entry[key], float) and math.isfinite(entry[key]), (name, key)
        assert 0.0 <= entry["ctr"] <= 1.0 and 0.0 < entry["coverage"] <= 1.0
        # a session holds at least one slate, so its return is at most its length times one click
        assert 0.0 <= entry["avg_return"] <= entry["avg_session_length"]
        if name in ENCODER_AGENTS:
            assert 0.0 <= entry["ndcg@10"] <= entry["hr@10"] <= 1.0, name
        else:
            assert entry["hr@10"] is None
        if name in LEARNERS:
            assert entry["updates"] > 0 and entry["updates_per_s"] > 0, name
            assert [p["step"] for p in entry["curve"]][0] == 0 and len(entry["curve"]) >= 2
        else:
            assert entry["updates_per_s"] is None and entry["curve"] == []
    assert results["agents"]["random"]["coverage"] > results["agents"]["popularity"]["coverage"]
    ope = results["ope"]["targets"]
    assert set(ope) == {"large-model", "reinforce", "hybrid-reinforce"}
    for row in ope.values():
        assert row["true_value"] > 0
        for est in ("ips", "snips", "dr"):
            assert math.isfinite(row["estimates"][est])
            assert row["relative_error"][est] == pytest.approx(
                abs(row["estimates"][est] - row["true_value"]) / row["true_value"], rel=1e-6)
    assert set(results["targets"]) and all(v in (True, False, None) for v in results["targets"].values())


def test_report_md_table(quick_run):
    text = (quick_run / "report.md").read_text()
    results = json.loads((quick_run / "results.json").read_text())
    assert "| agent | return / session | CTR | coverage | diversity | updates/s" in text
    for name, entry in results["agents"].items():
        row = next(line for line in text.splitlines() if line.startswith(f"| {name} |"))
        assert f"{entry['avg_return']:.3f}" in row
    assert "## Off-policy evaluation" in text and "learning_curves.png" in text


def test_fallback_message(monkeypatch, tmp_path):
    """ml-100k that cannot be loaded: the run says so and continues on synthetic data."""
    from recengine.report import compare

    def fail(*args, **kwargs):
        raise FileNotFoundError("no ml-100k here")

    monkeypatch.setattr("recengine.data.load_movielens", fail)
    messages = []
    cfg = compare.CompareConfig(out=str(tmp_path), dataset="ml-100k").quick_settings()
    data, fallback = compare.load_data(cfg, log=messages.append)
    assert data.name == "synthetic"
    assert "FALLING BACK" in fallback and "no ml-100k here" in fallback and messages
