"""recengine.bench.overload: one load run's summary counts goodput, the 200s' percentiles and each kind of
refusal by its status and message."""

from recengine.bench import overload


def test_summary_counts_each_kind_of_refusal():
    load = {
        "statuses": [200, 200, 503, 503, 503, 504, 422],
        "replies": [
            {},
            {},
            {"error": "the model is busy: about 80 ms of work is ahead of the request, more than its deadline leaves"},
            {"error": "the queue is full (1024 requests wait for the model)"},
            {"error": "the request's deadline passed before the model could run it"},
            {"error": "the request's deadline passed while the model answered it"},
            {"error": "history: bad"},
        ],
        "latencies_s": [0.010, 0.030, 0.001, 0.001, 0.05, 0.05, 0.001],
        "wall_s": 2.0,
    }
    s = overload.summarize(load, 3.5)
    assert s["ok"] == 2 and s["goodput_per_s"] == 1.0 and s["offered_per_s"] == 3.5
    assert 10.0 <= s["p50_ms"] <= 30.0 and s["p50_ms"] <= s["p99_ms"] <= 30.0
    assert (s["shed_503"], s["queue_full_503"], s["late_503"], s["late_504"], s["other"]) == (1, 1, 1, 1, 1)
    assert "| run |" in overload.markdown({"deadline_ms": 50, "neighbours": 2, "runs": {"x": s}})


def test_the_objective_needs_99_percent_answered_and_p99_under_the_deadline():
    def run(ok, requests, p99):
        return {"ok": ok, "requests": requests, "p99_ms": p99}

    assert overload.meets_objective(run(99, 100, 49.0), 50.0)
    assert not overload.meets_objective(run(98, 100, 10.0), 50.0)  # too many refused
    assert not overload.meets_objective(run(100, 100, 50.0), 50.0)  # p99 at the deadline
    assert not overload.meets_objective(run(1, 1, float("nan")), 50.0)  # NaN never meets it
