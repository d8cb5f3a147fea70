"""recengine.bench.serving: the eager reference answers what the Recommender answers; the latency section reports
every case (a tiny run on the test model). The HTTP endpoint itself is tested in tests/serving/test_http.py."""

import torch

from recengine.bench import serving as bench_serving
from recengine.serving import Recommender
from recengine.train.sasrec_checkpoint import load_model
from tests.serving.conftest import model_dir  # noqa: F401  (the shared fixture)

HISTORIES = [[1, 2, 3, 50], [7], [], list(range(20, 40)), [299, 0, 299]]


def test_eager_reference_recommends_what_the_recommender_does(model_dir):  # noqa: F811
    model, _ = load_model(str(model_dir / "model.safetensors"))
    eager = bench_serving.EagerReference(model)
    items, scores = eager.recommend(HISTORIES, k=10)
    ours = Recommender.load(model_dir).recommend(HISTORIES, k=10)
    assert torch.equal(items, ours.items)
    assert torch.allclose(scores, ours.scores, atol=1e-5)


def test_latency_reports_p50_p99_for_every_provider_and_batch(model_dir):  # noqa: F811
    model, _ = load_model(str(model_dir / "model.safetensors"))
    recs = {d: Recommender.load(model_dir, dtype=d) for d in ("float32", "int8")}
    out = bench_serving.latency(
        recs, bench_serving.EagerReference(model), HISTORIES, batches=(1, 16), calls={1: 3, 16: 2}
    )
    assert set(out) == {f"{p} b{b}" for p in ("float32", "int8", bench_serving.EAGER) for b in (1, 16)}
    assert all(0 < r["p50_ms"] <= r["p99_ms"] and r["calls"] in (2, 3) for r in out.values())
