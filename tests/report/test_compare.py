"""Smoke run of `recengine compare --quick` on synthetic data: the files it writes and what they hold."""

import json
import math

import pytest

from recengine.cli import main

HYBRIDS = ["hybrid-dqn", "hybrid-reinforce", "hybrid-slateq"]
AGENTS = ["random", "popularity", "large-model", "large-model-logged", "dqn", "reinforce", *HYBRIDS, "mf-bpr"]
OFFLINE_AGENTS = ["large-model", "large-model-logged", "dqn", "reinforce", *HYBRIDS, "mf-bpr"]
LEARNERS = ["dqn", "reinforce", *HYBRIDS]
SHARES = {"large-model-logged", *HYBRIDS}  # closed shares of the headroom: the hybrids and the no-RL exclusion
ORACLES = ["oracle-myopic", "oracle-lookahead"]
MECHANISMS = [
    "none",
    "genre fatigue",
    "leave hazard after clicks",
    "quit after slates without a click",
    "evolving state",
]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    config = tmp_path_factory.mktemp("config") / "compare.toml"
    config.write_text("headroom_mechanisms = true\n")  # off by default for time; the report's table is tested here
    argv = ["compare", "--quick", "--dataset", "synthetic", "--out", str(out), "--threads", "1", "--seeds", "2"]
    # every hybrid, not only the default ones: the verdict, the shares and the robustness checks handle several
    assert main([*argv, "--config", str(config), "--agents", ",".join(AGENTS)]) == 0
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
        if name in OFFLINE_AGENTS:
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
    assert set(ope) == {"large-model", "reinforce", "hybrid-slateq"}
    for row in ope.values():
        assert row["true_value"] > 0
        for est in ("ips", "snips", "dr"):
            assert math.isfinite(row["estimates"][est])
            assert row["relative_error"][est] == pytest.approx(
                abs(row["estimates"][est] - row["true_value"]) / row["true_value"], rel=1e-6
            )
    assert set(results["targets"]) and all(v in (True, False, None) for v in results["targets"].values())


def test_results_json_intervals(quick_run):
    """Every agent: return/session with its interval over both seeds' sessions, the paired differences against
    the baselines, per-seed returns; learners: a learning-curve gain; targets decided by the intervals."""
    results = json.loads((quick_run / "results.json").read_text())
    assert results["meta"]["seeds"] == 2 and results["meta"]["ci_level"] == 0.95
    agents = results["agents"]
    for name, entry in agents.items():
        assert entry["sessions"] == 2 * results["meta"]["eval_sessions"], name
        lo, hi = entry["return_ci95"]
        assert lo < entry["avg_return"] < hi and entry["return_stderr"] > 0, name
        assert hi - entry["avg_return"] == pytest.approx(1.959964 * entry["return_stderr"], rel=1e-5)
        assert len(entry["seed_returns"]) == 2
        assert entry["avg_return"] == pytest.approx(sum(entry["seed_returns"]) / 2, rel=1e-9)
        if name in OFFLINE_AGENTS:  # each training run's offline NDCG@10, and their mean in the row
            assert len(entry["seed_ndcg@10"]) == 2
            assert entry["ndcg@10"] == pytest.approx(sum(entry["seed_ndcg@10"]) / 2, rel=1e-9)
        else:
            assert entry["seed_ndcg@10"] is None
        assert set(entry["paired"]) == {"popularity", "large-model", "large-model-logged"} - {name}, name
        for base, d in entry["paired"].items():
            # the mean of the per-session differences is the difference of the means
            assert d["diff"] == pytest.approx(entry["avg_return"] - agents[base]["avg_return"], abs=1e-9)
            assert d["ci95"][0] <= d["diff"] <= d["ci95"][1] and d["n"] == entry["sessions"]
            # two seeds: one difference per seed, their t interval (12.706 · s / sqrt(2))
            seed_diffs = [x - y for x, y in zip(entry["seed_returns"], agents[base]["seed_returns"])]
            assert d["seed_diffs"] == pytest.approx(seed_diffs, abs=1e-9)
            half = 12.706205 * abs(seed_diffs[0] - seed_diffs[1]) / math.sqrt(2) / math.sqrt(2)
            assert d["seed_ci95"] == pytest.approx([d["diff"] - half, d["diff"] + half], abs=1e-6)
        if name in LEARNERS:
            g = entry["curve_gain"]
            assert g["ci95"][0] <= g["diff"] <= g["ci95"][1]
            for point in entry["curve"]:
                assert point["return_ci95"][0] <= point["avg_return"] <= point["return_ci95"][1]
        else:
            assert entry["curve_gain"] is None
    assert agents["popularity"]["paired"]["large-model"]["diff"] == pytest.approx(
        -agents["large-model"]["paired"]["popularity"]["diff"]
    )
    evidence = results["target_evidence"]
    for text, diffs in evidence.items():
        assert diffs, text
        assert results["targets"][text] == any(d["ci95"][0] > 0 and d.get("seed_ci95", [1])[0] > 0 for d in diffs), text
    assert evidence["DQN beats popularity (return/session)"] == [agents["dqn"]["paired"]["popularity"]]


def test_report_md_table(quick_run):
    text = (quick_run / "report.md").read_text()
    results = json.loads((quick_run / "results.json").read_text())
    assert "| agent | return / session | CTR | coverage | diversity | updates/s" in text
    for name, entry in results["agents"].items():
        row = next(line for line in text.splitlines() if line.startswith(f"| {name} |"))
        assert f"{entry['avg_return']:.3f}" in row
    assert "## Off-policy evaluation" in text and "learning_curves.png" in text
    assert "## Paired differences" in text
    for name, entry in results["agents"].items():
        row = next(line for line in text.splitlines() if line.startswith(f"| {name} |"))
        assert f"± {entry['return_ci95'][1] - entry['avg_return']:.3f}" in row
        if name != "popularity":
            d = entry["paired"]["popularity"]
            assert f"{d['diff']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]" in text


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


def test_dqn_item_table_must_be_known(tmp_path):
    from recengine.report import compare

    with pytest.raises(ValueError, match="dqn_item_table"):  # refused where the setting is made, before any run
        compare.CompareConfig(
            out=str(tmp_path), dataset="synthetic", agents=("dqn",), progress=False, dqn_item_table="shared"
        )


def test_unknown_agent_is_named(tmp_path):
    from recengine.report import compare

    cfg = compare.CompareConfig(out=str(tmp_path), dataset="synthetic", agents=("popularity", "oracle"))
    with pytest.raises(ValueError, match="oracle"):
        compare.run_compare(cfg.quick_settings(), log=lambda *a: None)


def test_report_names_no_issue_numbers(quick_run):
    assert "issue" not in (quick_run / "report.md").read_text().lower()


def test_results_json_holds_the_simulator_validation(quick_run):
    results = json.loads((quick_run / "results.json").read_text())
    v = results["simulator_validation"]
    assert list(v["policies"]) == ["random", "popularity", "mf-bpr", "large-model"]
    for key in ("hr@10", "ndcg@10", "log_likelihood"):
        assert math.isfinite(v["user_model"]["test"][key]), key
    assert v["large_model"]["ndcg@10"] == pytest.approx(results["pretrain"]["test"]["ndcg@10"])
    assert -1.0 <= v["kendall_tau"] <= 1.0
    assert v["paired"]["target"] == "large-model" and v["paired"]["baseline"] == "popularity"
    for row in v["policies"].values():
        assert 0.0 <= row["consumed_share"] <= 1.0
    assert "## Simulator validation" in (quick_run / "report.md").read_text()


def test_the_saved_simulator_reloads_and_was_fitted_on_train_only(quick_run):
    from recengine.env import SequentialUserModel, load_simulator

    results = json.loads((quick_run / "results.json").read_text())
    sim = load_simulator(str(quick_run / results["simulator_file"]))
    assert isinstance(sim, SequentialUserModel) and sim.num_items == results["meta"]["num_items"]
    assert sim.config.history_len == results["meta"]["history_len"]


def test_robustness_checks_and_the_verdict(quick_run):
    results = json.loads((quick_run / "results.json").read_text())
    robust = results["robustness"]
    assert set(robust["variants"]) == {"popularity weight halved", "second simulator", "disjoint halves"}
    for v in robust["variants"].values():
        assert set(v["returns"]) == {"large-model", *SHARES, *ORACLES}
        assert set(v["headroom"]["closed_share"]) == SHARES
        for hybrid, d in v["paired"].items():
            assert d["diff"] == pytest.approx(
                v["returns"][hybrid]["mean"] - v["returns"]["large-model"]["mean"], abs=1e-9
            )
    verdict = results["rl_vs_large_model"]
    assert set(verdict) == set(HYBRIDS)  # the no-RL baseline is no subject of "does RL beat the large model?"
    text = (quick_run / "report.md").read_text()
    for hybrid, v in verdict.items():
        assert list(v["checks"]) == ["main simulator", *robust["variants"]]
        assert v["summary"] not in text  # a smoke run shows the differences, states no outcome
        for check, r in v["checks"].items():
            assert f"| {hybrid} | {check} | {r['diff']:+.3f} [{r['ci95'][0]:+.3f}, {r['ci95'][1]:+.3f}]" in text


def test_a_smoke_report_opens_with_its_banner_and_summary_and_states_no_verdict(quick_run):
    from recengine.report.summary import SMOKE_BANNER

    text = (quick_run / "report.md").read_text()
    lines = text.splitlines()
    assert lines[:3] == ["# recengine compare", "", SMOKE_BANNER]
    start = lines.index("## Summary") + 2
    summary = lines[start : lines.index("", start)]
    assert len(summary) == 5 and all(line.startswith("- **") for line in summary)
    assert "not judged in a smoke run" in summary[2] and "not judged in a smoke run" in summary[4]
    for verdict in ("does not beat", "not met", "beats the large model", "loses to", ": **met**", "## Targets"):
        assert verdict not in text, verdict


def test_the_learning_curves_say_how_many_sessions_each_point_holds(quick_run):
    results = json.loads((quick_run / "results.json").read_text())
    per_point, table = results["meta"]["config"]["curve_sessions"], results["meta"]["eval_sessions"]
    assert per_point != table  # the smoke settings do differ, which is why the report must say so
    text = (quick_run / "report.md").read_text()
    assert f"each point is measured on {per_point} sessions, the table above on {table} per agent" in text


def test_results_json_lists_exactly_the_files_written(quick_run):
    results = json.loads((quick_run / "results.json").read_text())
    assert sorted(results["files"]) == sorted(p.name for p in quick_run.iterdir())
    assert {"config.json", "results.json", "report.md", "learning_curves.png", "simulator.safetensors"} <= set(
        results["files"]
    )


def test_phases_timed_in_results_and_report(quick_run):
    results = json.loads((quick_run / "results.json").read_text())
    phases = results["meta"]["phases"]
    assert "data and simulator fit" in phases and "large model training" in phases
    assert all(f"agent {name}" in phases for name in AGENTS)
    assert {"off-policy evaluation", "simulator validation", "robustness checks"} <= set(phases)
    for p in phases.values():
        assert p["wall_s"] >= 0.0 and p["cpu_s"] >= 0.0
    assert sum(p["wall_s"] for p in phases.values()) <= results["meta"]["wall_seconds"] + 1.0
    assert "## Where the time went" in (quick_run / "report.md").read_text()


def _small_run(out):
    from recengine.report import compare

    cfg = compare.CompareConfig(
        out=str(out), dataset="synthetic", agents=("random", "popularity", "large-model"), robustness=False
    ).quick_settings()
    cfg.progress = False
    return compare.run_compare(cfg, log=lambda *a: None)


def test_same_seed_same_numbers_and_the_callers_rng_untouched(tmp_path):
    import torch

    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    first = _small_run(tmp_path / "a")
    assert torch.equal(torch.rand(3), expected_next)  # the run drew from its own copy of the global generator
    second = _small_run(tmp_path / "b")
    for name in ("random", "popularity", "large-model"):
        assert first["agents"][name]["avg_return"] == second["agents"][name]["avg_return"], name
    for name in ORACLES:  # the lookahead's planning draws from its own seeds
        assert first["oracles"][name]["avg_return"] == second["oracles"][name]["avg_return"], name
    assert first["pretrain"]["test"] == second["pretrain"]["test"]
    assert set(first["agents"]) == {"random", "popularity", "large-model"} and first["robustness"] == {}


def test_beyond_accuracy_in_json_report_and_plot(quick_run):
    """Every agent: the offline and simulator metrics with intervals; the row's coverage is the simulator's; the
    report's section and the plot of accuracy against diversity."""
    results = json.loads((quick_run / "results.json").read_text())
    for name, entry in results["agents"].items():
        ba = entry["beyond_accuracy"]
        assert set(ba) == {"offline", "simulator"}, name
        assert entry["coverage"] == pytest.approx(ba["simulator"]["coverage"]["value"])
        for block in ba.values():
            for key in ("coverage", "diversity_genre", "diversity_embedding", "novelty", "popularity_bias"):
                lo, hi = block[key]["ci95"]
                assert lo <= block[key]["value"] <= hi, (name, key)
        assert ba["simulator"]["novelty"]["n"] == 2 * results["meta"]["eval_sessions"]  # both seeds' sessions
        if name in OFFLINE_AGENTS:  # the lists' own NDCG@10 is the row's
            assert ba["offline"]["ndcg@10"]["value"] == pytest.approx(entry["ndcg@10"], abs=1e-9), name
    assert (quick_run / results["beyond_accuracy"]["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (quick_run / "report.md").read_text()
    assert "## Beyond accuracy" in text and "![accuracy_vs_diversity.png](accuracy_vs_diversity.png)" in text


def test_the_oracles_play_the_agents_sessions_and_give_the_headroom(quick_run):
    """Both oracles beside the agents (not among them), on every seed's sessions, paired with the large model; the
    headroom, each hybrid's closed share, the table by mechanism and the checks against the real sessions in the
    report; the plot."""
    results = json.loads((quick_run / "results.json").read_text())
    agents, oracles, gap = results["agents"], results["oracles"], results["headroom"]
    assert list(oracles) == ORACLES and not set(ORACLES) & set(agents)
    for entry in oracles.values():  # quick: the oracles play every one of the 128 sessions of each seed
        assert entry["sessions"] == agents["large-model"]["sessions"] == 2 * results["meta"]["eval_sessions"]
        d = entry["paired"]["large-model"]
        assert d["diff"] == pytest.approx(entry["avg_return"] - agents["large-model"]["avg_return"], abs=1e-9)
    assert gap["headroom"]["diff"] == pytest.approx(
        oracles["oracle-lookahead"]["avg_return"] - agents["large-model"]["avg_return"], abs=1e-9
    )
    assert gap["value_of_planning"]["diff"] == pytest.approx(
        oracles["oracle-lookahead"]["avg_return"] - oracles["oracle-myopic"]["avg_return"], abs=1e-9
    )
    assert set(gap["closed_share"]) == SHARES
    assert list(gap["mechanisms"]["rows"]) == MECHANISMS
    checks = gap["mechanism_checks"]
    assert checks["real"]["sessions"] > 0 and 0 <= checks["real"]["consecutive_same_genre"] <= 1
    assert set(checks["simulated_large_model"]) == set(MECHANISMS)
    assert checks["evolving_state"]["items"] > 0
    report = (quick_run / "report.md").read_text()
    for text in (
        "| oracle-myopic (oracle: reads the simulator) |",
        "| oracle-lookahead (oracle: reads the simulator) |",
        "**Headroom**",
        "## Where the headroom comes from",
        "| genre fatigue |",
        "consecutive items sharing a genre",
        "![headroom.png](headroom.png)",
    ):
        assert text in report, text
    assert (quick_run / "headroom.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
