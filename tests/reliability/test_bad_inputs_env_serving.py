"""Bad arguments at the newer Python boundaries: the gymnasium environments' constructors, Recommender's
histories and device, the off-policy intervals' options. Each is refused before any work, with a message naming
the argument."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import recengine.env  # noqa: F401  (registers the environments)
from recengine.env import SeqSimConfig, SimConfig
from recengine.env.registration import RECSIM_ID, SEQ_RECSIM_ID, make_seq_recsim
from recengine.eval.ope_estimators import InverseProbabilityWeighting
from recengine.serving import Recommender
from tests.reliability.cases import case

ENVIRONMENTS = [
    case("users-zero", lambda: gym.make(RECSIM_ID, num_users=0), ValueError, "num_users", ">= 1"),
    case("users-negative", lambda: gym.make(RECSIM_ID, num_users=-5), ValueError, "num_users"),
    case("items-zero", lambda: gym.make(RECSIM_ID, num_items=0), ValueError, "num_items"),
    case("items-float", lambda: gym.make(RECSIM_ID, num_items=10.5), TypeError, "num_items"),
    case("seed-negative", lambda: gym.make(RECSIM_ID, seed=-1), ValueError, "seed"),
    case("config-dict", lambda: gym.make(RECSIM_ID, config={"slate_size": 3}), TypeError, "config", "SimConfig"),
    case("config-other-simulator", lambda: gym.make(RECSIM_ID, config=SeqSimConfig()), TypeError, "SimConfig"),
    case("seq-config-other-simulator", lambda: make_seq_recsim(config=SimConfig()), TypeError, "SeqSimConfig"),
    case("seq-users-zero", lambda: gym.make(SEQ_RECSIM_ID, num_users=0), ValueError, "num_users"),
    case(
        "vec-items-zero",
        lambda: gym.make_vec(RECSIM_ID, num_envs=2, vectorization_mode="vector_entry_point", num_items=0),
        ValueError,
        "num_items",
    ),
]


@pytest.mark.parametrize("bad", ENVIRONMENTS)
def test_a_bad_environment_argument_is_refused_naming_it(bad):
    with pytest.raises(bad.error) as info:
        bad.call()
    for word in bad.names:
        assert word in str(info.value), str(info.value)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A small large-model file, saved as `recengine train` saves it."""
    from recengine.data import make_synthetic
    from recengine.train import SASRecConfig, model_from_data, sasrec_checkpoint

    cfg = SASRecConfig(dim=8, max_len=4, num_layers=1, num_heads=2)
    torch.manual_seed(0)
    model = model_from_data(make_synthetic(20, 30, seed=0), cfg).eval()
    out = tmp_path_factory.mktemp("served")
    sasrec_checkpoint.save_model(str(out / "model.safetensors"), model, cfg, "synthetic")
    return out


@pytest.fixture(scope="module")
def recommender(model_dir):
    return Recommender.load(model_dir / "model.safetensors")


HISTORIES = [
    # (id, histories, error, words)
    ("three-levels", [[[1, 2], [3, 4]]], TypeError, "histories[0]"),
    ("ragged-inside", [[1, 2], [[3], [4, 5]]], TypeError, "histories[1]"),
    ("array-row", [[1], [np.array([2, 3])]], TypeError, "histories[1]"),
    ("float-ids", [[1.5, 2.0]], TypeError, "item ids must be ints"),
    ("string-ids", [["1", "2"]], TypeError, "item ids must be ints"),
    ("id-outside", [[1, 10**6]], IndexError, "histories[0]"),
    ("not-a-list", "1,2,3", TypeError, "histories"),
]


@pytest.mark.parametrize("histories, error, words", [pytest.param(h, e, w, id=i) for i, h, e, w in HISTORIES])
def test_bad_histories_are_refused_naming_them(recommender, histories, error, words):
    with pytest.raises(error) as info:
        recommender.recommend(histories, k=3)
    assert words in str(info.value), str(info.value)


DEVICES = [
    ("cuda-99", "cuda:99"),
    ("tpu", "tpu"),
    ("nonsense", "gpu-fast"),
]


@pytest.mark.parametrize("device", [pytest.param(d, id=i) for i, d in DEVICES])
def test_a_device_this_build_lacks_is_refused_before_loading(model_dir, device):
    if device.startswith("cuda") and torch.cuda.is_available() and torch.cuda.device_count() > 99:
        pytest.skip("a machine with 100 GPUs")
    with pytest.raises(ValueError, match="device"):
        Recommender.load(model_dir / "model.safetensors", device=device)


def _logs():
    rng = np.random.default_rng(0)
    n, a = 50, 4
    action = rng.integers(0, a, n)
    return dict(
        reward=rng.integers(0, 2, n).astype(float),
        action=action,
        pscore=np.full(n, 1 / a),
        action_dist=np.full((n, a, 1), 1 / a),
    )


OPE_OPTIONS = [
    ("bootstrap-fraction", dict(n_bootstrap_samples=2.7), TypeError, "n_bootstrap_samples"),
    ("bootstrap-string", dict(n_bootstrap_samples="100"), TypeError, "n_bootstrap_samples"),
    ("bootstrap-one", dict(n_bootstrap_samples=1), ValueError, "n_bootstrap_samples"),
    ("bootstrap-bool", dict(n_bootstrap_samples=True), TypeError, "n_bootstrap_samples"),
    ("alpha-string", dict(alpha="0.05"), ValueError, "alpha"),
    ("alpha-nan", dict(alpha=float("nan")), ValueError, "alpha"),
    ("seed-negative", dict(random_state=-1), ValueError, "random_state"),
    ("seed-float", dict(random_state=1.5), ValueError, "random_state"),
]


@pytest.mark.parametrize("options, error, words", [pytest.param(o, e, w, id=i) for i, o, e, w in OPE_OPTIONS])
def test_a_bad_interval_option_is_refused_naming_it(options, error, words):
    with pytest.raises(error, match=words):
        InverseProbabilityWeighting().estimate_interval(**_logs(), **options)
