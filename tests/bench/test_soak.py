"""recengine.bench.soak: a few seconds of the fault soak against the real server (a child process) on the test
model: every valid answer is its model version's, each fault gets its answer, the bad checkpoint is refused."""

import os

import pytest
import torch

from recengine.bench import soak
from recengine.checkpoint import read
from recengine.serving import Recommender
from tests.serving.conftest import model_dir  # noqa: F401  (the shared fixture)


def test_soak_models_share_the_catalog_and_answer_differently(model_dir, tmp_path):  # noqa: F811
    paths = soak.make_models(str(model_dir), str(tmp_path))
    a, b = Recommender.load(paths["a"]), Recommender.load(paths["b"])
    assert a.num_items == b.num_items
    histories = soak.soak_histories(a.num_items, a.max_len, 64)
    differ = (a.recommend(histories, k=10).items != b.recommend(histories, k=10).items).any(1)
    assert differ.float().mean() > 0.5
    assert os.path.getsize(paths["bad"]) < os.path.getsize(paths["a"])
    tensors, _ = read(paths["a"])
    assert all(torch.equal(t, read(str(model_dir / "model.safetensors"))[0][n]) for n, t in tensors.items())


@pytest.mark.slow
def test_short_soak_answers_every_valid_request_with_its_version_model(model_dir):  # noqa: F811
    result = soak.run(str(model_dir), 8.0, clients=6, swap_every=1.5, window_s=4.0, pool=64)
    verdicts = result["valid_by_verdict"]
    assert verdicts.get("correct", 0) > 0
    assert set(verdicts) == {"correct"}, verdicts  # nothing wrong, nothing from the other model, no 5xx
    swaps = [s for s in result["swaps"] if s["checkpoint"] != "bad (truncated)"]
    assert len(swaps) >= 2 and all(s["status"] == 200 for s in swaps)
    assert [s["version"] for s in swaps] == list(range(2, 2 + len(swaps)))
    (bad,) = [s for s in result["swaps"] if s["checkpoint"] == "bad (truncated)"]
    assert bad["status"] == 422 and bad["error"]
    assert sum(sum(o.values()) for o in result["faults"].values()) >= 5
    for kind, outcomes in result["faults"].items():
        want = {"slow": "correct", "disconnect": "hung up"}.get(kind, f"status {soak.FAULTS[kind]}")
        assert set(outcomes) <= {want}, (kind, outcomes)
    assert result["memory_kib"]["max"] > 0 and result["windows"]
    assert "| window from (s) |" in soak.markdown(result)
