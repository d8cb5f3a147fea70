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
from recengine.env.sessions import SessionModel
from recengine.eval.ope_estimators import DoublyRobustWithShrinkage, InverseProbabilityWeighting, SwitchDR
from recengine.serving import Recommender
from tests.env.conftest import make_tiny_sim
from tests.reliability.cases import case

NAN, INF = float("nan"), float("inf")

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
    case(
        "vec-num-envs-float",
        lambda: gym.make_vec(RECSIM_ID, num_envs=2.5, vectorization_mode="vector_entry_point"),
        TypeError,
        "num_envs",
    ),
    case(
        "seq-vec-num-envs-zero",
        lambda: gym.make_vec(SEQ_RECSIM_ID, num_envs=0, vectorization_mode="vector_entry_point"),
        ValueError,
        "num_envs",
    ),
    case("model-other-type", lambda: gym.make(RECSIM_ID, model="x"), TypeError, "model", "UserModel"),
    case("seq-model-other-type", lambda: gym.make(SEQ_RECSIM_ID, model="x"), TypeError, "SequentialUserModel"),
    case("seq-items-zero", lambda: gym.make(SEQ_RECSIM_ID, num_items=0), ValueError, "num_items"),
    case("seq-seed-float", lambda: gym.make(SEQ_RECSIM_ID, seed=1.5), TypeError, "seed"),
    case("seq-config-dict", lambda: gym.make(SEQ_RECSIM_ID, config={}), TypeError, "SeqSimConfig"),
    case(
        "seq-slate-above-items",
        lambda: gym.make(SEQ_RECSIM_ID, num_items=4, config=SeqSimConfig(slate_size=5)),
        ValueError,
        "slate_size",
    ),
    case("seq-user-pool-outside", lambda: gym.make(SEQ_RECSIM_ID, user_pool=[10**6]), IndexError, "user_pool"),
    # the simulators' settings: the same checks whether built here, by an entry point or from a saved file
    case("simconfig-slate-float", lambda: SimConfig(slate_size=2.5), TypeError, "slate_size"),
    case("simconfig-history-str", lambda: SimConfig(history_len="8"), TypeError, "history_len"),
    case("simconfig-steps-zero", lambda: SimConfig(max_steps=0), ValueError, "max_steps"),
    case("simconfig-quit-nan", lambda: SimConfig(quit_base=NAN), ValueError, "quit_base"),
    case("simconfig-growth-above-one", lambda: SimConfig(quit_growth=1.5), ValueError, "quit_growth"),
    case("simconfig-fatigue-negative", lambda: SimConfig(fatigue_weight=-1.0), ValueError, "fatigue_weight"),
    case("simconfig-repeat-inf", lambda: SimConfig(repeat_penalty=INF), ValueError, "repeat_penalty"),
    case("simconfig-affinity-inf", lambda: SimConfig(affinity_scale=INF), ValueError, "affinity_scale"),
    case("simconfig-no-click-str", lambda: SimConfig(no_click_utility="0"), TypeError, "no_click_utility"),
    case("seqconfig-slate-float", lambda: SeqSimConfig(slate_size=2.5), TypeError, "slate_size"),
    case("seqconfig-steps-bool", lambda: SeqSimConfig(max_steps=True), TypeError, "max_steps"),
    case("seqconfig-quit-nan", lambda: SeqSimConfig(no_click_quit=NAN), ValueError, "no_click_quit"),
    case("seqconfig-click-nan", lambda: SeqSimConfig(fatigue_click=NAN), ValueError, "fatigue_click"),
    case("seqconfig-shown-negative", lambda: SeqSimConfig(fatigue_shown=-0.1), ValueError, "fatigue_shown"),
    case("session-model-p-zero", lambda: SessionModel(0.5, 0.0, 0.1), ValueError, "p_short"),
    case("session-model-p-above-one", lambda: SessionModel(0.5, 0.5, 1.5), ValueError, "p_long"),
    case("session-model-weight-nan", lambda: SessionModel(NAN, 0.5, 0.1), ValueError, "weight_short"),
    case("session-model-count-float", lambda: SessionModel(0.5, 0.5, 0.1, 2.5), TypeError, "num_sessions"),
    case("session-model-gap-zero", lambda: SessionModel(0.5, 0.5, 0.1, gap_seconds=0), ValueError, "gap_seconds"),
    case(
        "response-popularity-negative", lambda: make_tiny_sim(popularity_weight=-1.0), ValueError, "popularity_weight"
    ),
    case("response-popularity-huge", lambda: make_tiny_sim(popularity_weight=1e6), ValueError, "popularity_weight"),
    case("user-model-no-click-nan", lambda: make_tiny_sim(no_click_offset=NAN), ValueError, "no_click_offset"),
    case("user-model-no-click-huge", lambda: make_tiny_sim(no_click_offset=1e4), ValueError, "no_click_offset"),
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


RECOMMENDER = [
    # (id, call(recommender, model file), error, words): the arguments besides the histories
    ("load-checkpoint-none", lambda r, f: Recommender.load(None), TypeError, "checkpoint"),
    ("load-checkpoint-int", lambda r, f: Recommender.load(3), TypeError, "checkpoint"),
    ("load-dtype-unknown", lambda r, f: Recommender.load(f, dtype="fp16"), ValueError, "dtype"),
    (
        "load-compute-dtype-unknown",
        lambda r, f: Recommender.load(f, compute_dtype="float16"),
        ValueError,
        "compute_dtype",
    ),
    ("load-compile-str", lambda r, f: Recommender.load(f, compile="no"), TypeError, "compile"),
    ("load-device-int", lambda r, f: Recommender.load(f, device=3), TypeError, "device"),
    ("k-zero", lambda r, f: r.recommend([[1]], k=0), ValueError, "k"),
    ("k-float", lambda r, f: r.recommend([[1]], k=2.0), TypeError, "k"),
    ("k-bool", lambda r, f: r.recommend([[1]], k=True), TypeError, "k"),
    ("k-above-catalog", lambda r, f: r.recommend([[1]], k=31), ValueError, "k"),
    ("exclude-seen-str", lambda r, f: r.recommend([[1]], exclude_seen="no"), TypeError, "exclude_seen"),
    ("exclude-seen-none", lambda r, f: r.recommend([[1]], exclude_seen=None), TypeError, "exclude_seen"),
    ("ids-unknown", lambda r, f: r.recommend([[1]], ids="names"), ValueError, "ids"),
    ("user-features-without-a-table", lambda r, f: r.recommend([[1]], user_features=[0]), ValueError, "user_features"),
    ("batch-empty", lambda r, f: r.recommend([]), ValueError, "histories"),
    ("offsets-falling", lambda r, f: r.recommend((torch.tensor([1, 2]), torch.tensor([2, 0]))), ValueError, "offsets"),
]


@pytest.mark.parametrize("call, error, words", [pytest.param(c, e, w, id=i) for i, c, e, w in RECOMMENDER])
def test_a_bad_recommender_argument_is_refused_naming_it(recommender, model_dir, call, error, words):
    with pytest.raises(error) as info:
        call(recommender, model_dir / "model.safetensors")
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


ESTIMATOR_OPTIONS = [
    case("clip-str", lambda: InverseProbabilityWeighting(clip="5"), TypeError, "clip"),
    case("clip-bool", lambda: InverseProbabilityWeighting(clip=True), TypeError, "clip"),
    case("clip-zero", lambda: InverseProbabilityWeighting(clip=0), ValueError, "clip"),
    case("clip-nan", lambda: InverseProbabilityWeighting(clip=NAN), ValueError, "clip"),
    case("switch-lambda-str", lambda: SwitchDR("20"), TypeError, "lambda_"),
    case("switch-lambda-nan", lambda: SwitchDR(NAN), ValueError, "lambda_"),
    case("dros-lambda-negative", lambda: DoublyRobustWithShrinkage(-1.0), ValueError, "lambda_"),
    case("dros-lambda-bool", lambda: DoublyRobustWithShrinkage(True), TypeError, "lambda_"),
]


@pytest.mark.parametrize("bad", ESTIMATOR_OPTIONS)
def test_a_bad_estimator_option_is_refused_naming_it(bad):
    with pytest.raises(bad.error) as info:
        bad.call()
    assert all(w in str(info.value) for w in bad.names), str(info.value)
