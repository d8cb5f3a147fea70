"""Bad inputs to PrioritizedReplay and tampered replay files: the stated exception naming the argument (or the
file), and the stored transitions, priorities and files on disk unchanged."""

from __future__ import annotations

import json
import math
import os

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import save_file

from recengine.buffers import PrioritizedReplay
from recengine.buffers.replay_file import ReplayFileError
from tests.reliability.cases import case, files_digest, tensors_digest

NAN, INF = math.nan, math.inf
FIELDS = {"state": ((3,), torch.float32), "reward": ((), torch.float32), "done": ((), torch.bool)}


def _ctor(**kw):
    args = {"capacity": 8, "fields": FIELDS}
    args.update(kw)
    return lambda: PrioritizedReplay(args.pop("capacity"), args.pop("fields"), **args)


CONSTRUCTOR = [
    case("capacity-zero", _ctor(capacity=0), ValueError, "capacity"),
    case("capacity-negative", _ctor(capacity=-8), ValueError, "capacity"),
    case("capacity-float", _ctor(capacity=8.0), TypeError, "capacity"),
    case("capacity-str", _ctor(capacity="8"), TypeError, "capacity"),
    case("capacity-not-multiple", _ctor(capacity=9, num_envs=2), ValueError, "capacity"),
    case("fields-empty", _ctor(fields={}), TypeError, "fields"),
    case("fields-list", _ctor(fields=[("reward", ((), torch.float32))]), TypeError, "fields"),
    case("fields-no-reward", _ctor(fields={"done": ((), torch.bool)}), ValueError, "reward"),
    case("fields-no-done", _ctor(fields={"reward": ((), torch.float32)}), ValueError, "done"),
    case("fields-reward-shape", _ctor(fields={**FIELDS, "reward": ((2,), torch.float32)}), ValueError, "reward"),
    case("fields-bad-spec", _ctor(fields={**FIELDS, "x": "float"}), TypeError, "x"),
    case("fields-bad-dtype", _ctor(fields={**FIELDS, "x": ((), "float32")}), TypeError, "x"),
    case("fields-negative-shape", _ctor(fields={**FIELDS, "x": ((-1,), torch.float32)}), TypeError, "x"),
    case("fields-reserved-discount", _ctor(fields={**FIELDS, "discount": ((), torch.float32)}), ValueError, "discount"),
    case("fields-reserved-n", _ctor(fields={**FIELDS, "n_x": ((), torch.float32)}), ValueError, "n_x"),
    case("fields-name-int", _ctor(fields={**FIELDS, 3: ((), torch.float32)}), TypeError, "fields"),
    case("alpha-negative", _ctor(alpha=-0.1), ValueError, "alpha"),
    case("alpha-nan", _ctor(alpha=NAN), ValueError, "alpha"),
    case("alpha-str", _ctor(alpha="0.6"), TypeError, "alpha"),
    case("n_step-zero", _ctor(n_step=0), ValueError, "n_step"),
    case("n_step-float", _ctor(n_step=2.0), TypeError, "n_step"),
    case("gamma-above-one", _ctor(gamma=1.5), ValueError, "gamma"),
    case("gamma-negative", _ctor(gamma=-0.1), ValueError, "gamma"),
    case("gamma-nan", _ctor(gamma=NAN), ValueError, "gamma"),
    case("num_envs-zero", _ctor(num_envs=0), ValueError, "num_envs"),
    case("num_envs-float", _ctor(num_envs=2.5), TypeError, "num_envs"),
    case("next_fields-unknown", _ctor(next_fields=["next_state"]), ValueError, "next_fields"),
]


@pytest.mark.parametrize("bad", CONSTRUCTOR)
def test_constructor_bad_input_is_refused(bad):
    with pytest.raises(bad.error) as info:
        bad.call()
    assert all(n in str(info.value) for n in bad.names), str(info.value)


@pytest.fixture
def replay() -> PrioritizedReplay:
    r = PrioritizedReplay(8, FIELDS, alpha=1.0)
    r.add(state=torch.arange(12.0).reshape(4, 3), reward=torch.ones(4), done=torch.tensor([0, 0, 1, 0]).bool())
    r.update_priorities(torch.tensor([0, 1, 2, 3]), torch.tensor([1.0, 2.0, 3.0, 4.0]))
    return r


def _state(r: PrioritizedReplay) -> tuple:
    return (
        len(r),
        r.position,
        r.max_leaf_priority,
        r.total_priority(),
        tensors_digest(r.leaf_priorities(), *(r._storage[n] for n in r.fields)),
    )


ROW = {"state": torch.zeros(2, 3), "reward": torch.zeros(2), "done": torch.zeros(2, dtype=torch.bool)}

METHODS = [
    case("add-missing-field", lambda r: r.add(state=ROW["state"], reward=ROW["reward"]), ValueError, "done"),
    case("add-unknown-field", lambda r: r.add(**ROW, extra=torch.zeros(2)), ValueError, "extra"),
    case(
        "add-wrong-dtype",
        lambda r: r.add(**{**ROW, "reward": torch.zeros(2, dtype=torch.float64)}),
        TypeError,
        "reward",
    ),
    case("add-wrong-shape", lambda r: r.add(**{**ROW, "state": torch.zeros(2, 4)}), ValueError, "state"),
    case("add-no-batch-dim", lambda r: r.add(**{**ROW, "reward": torch.tensor(0.0)}), ValueError, "reward"),
    case("add-row-mismatch", lambda r: r.add(**{**ROW, "reward": torch.zeros(3)}), ValueError, "reward"),
    case("add-list", lambda r: r.add(**{**ROW, "reward": [0.0, 0.0]}), TypeError, "reward"),
    case("add-done-int", lambda r: r.add(**{**ROW, "done": torch.zeros(2, dtype=torch.int64)}), TypeError, "done"),
    case("sample-batch-zero", lambda r: r.sample(0, 0.4), ValueError, "batch_size"),
    case("sample-batch-negative", lambda r: r.sample(-2, 0.4), ValueError, "batch_size"),
    case("sample-batch-float", lambda r: r.sample(2.0, 0.4), TypeError, "batch_size"),
    case("sample-beta-negative", lambda r: r.sample(2, -0.4), ValueError, "beta"),
    case("sample-beta-nan", lambda r: r.sample(2, NAN), ValueError, "beta"),
    case("sample-beta-str", lambda r: r.sample(2, "0.4"), TypeError, "beta"),
    case("sample-generator-int", lambda r: r.sample(2, 0.4, generator=3), TypeError, "generator"),
    case("update-indices-list", lambda r: r.update_priorities([0], torch.ones(1)), TypeError, "indices"),
    case("update-priorities-list", lambda r: r.update_priorities(torch.tensor([0]), [1.0]), TypeError, "priorities"),
    case(
        "update-indices-float", lambda r: r.update_priorities(torch.tensor([0.0]), torch.ones(1)), TypeError, "indices"
    ),
    case(
        "update-priorities-int",
        lambda r: r.update_priorities(torch.tensor([0]), torch.tensor([1])),
        TypeError,
        "priorities",
    ),
    case(
        "update-shape-mismatch",
        lambda r: r.update_priorities(torch.tensor([0, 1]), torch.ones(3)),
        ValueError,
        "priorities",
    ),
    case("update-2d", lambda r: r.update_priorities(torch.tensor([[0]]), torch.ones(1, 1)), ValueError, "indices"),
    case(
        "update-nan",
        lambda r: r.update_priorities(torch.tensor([0, 1]), torch.tensor([1.0, NAN])),
        ValueError,
        "priorities",
    ),
    case("update-inf", lambda r: r.update_priorities(torch.tensor([0]), torch.tensor([INF])), ValueError, "priorities"),
    case(
        "update-negative",
        lambda r: r.update_priorities(torch.tensor([1, 0]), torch.tensor([1.0, -1.0])),
        ValueError,
        "priorities",
    ),
    case(
        "update-unwritten-slot", lambda r: r.update_priorities(torch.tensor([5]), torch.ones(1)), IndexError, "indices"
    ),
    case(
        "update-negative-slot", lambda r: r.update_priorities(torch.tensor([-1]), torch.ones(1)), IndexError, "indices"
    ),
    case(
        "update-sum-overflow",
        lambda r: r.update_priorities(torch.tensor([0, 1]), torch.tensor([1e308, 1e308], dtype=torch.float64)),
        ValueError,
        "priorities",
    ),
    case(
        "update-sum-overflow-exponent-applied",
        lambda r: r.update_priorities(
            torch.tensor([0]), torch.tensor([1e308], dtype=torch.float64), exponent_applied=True
        ),
        ValueError,
        "priorities",
    ),
]


@pytest.mark.parametrize("bad", METHODS)
def test_method_bad_input_is_refused_and_changes_nothing(replay, bad):
    before = _state(replay)
    with pytest.raises(bad.error) as info:
        bad.call(replay)
    assert all(n in str(info.value) for n in bad.names), str(info.value)
    assert _state(replay) == before
    replay.sample(4, 0.4)  # still usable


# ------------------------------------------------------------------------------------- tampered files
def _rewrite(src: str, dst: str, meta_change=None, tensor_change=None, raw_meta: str | None = None) -> None:
    with safe_open(src, "pt") as f:
        meta = json.loads(f.metadata()["recengine.replay"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    if meta_change:
        meta_change(meta)
    if tensor_change:
        tensor_change(tensors)
    save_file(tensors, dst, metadata={"recengine.replay": raw_meta if raw_meta is not None else json.dumps(meta)})


def _set(key, value):
    return lambda m: m.__setitem__(key, value)


def _del(key):
    return lambda m: m.pop(key)


META_TAMPERING = [
    ("version-2", _set("version", 2)),
    ("version-missing", _del("version")),
    ("capacity-zero", _set("capacity", 0)),
    ("capacity-str", _set("capacity", "8")),
    ("capacity-huge", _set("capacity", 2**40)),
    ("capacity-float", _set("capacity", 8.5)),
    ("capacity-missing", _del("capacity")),
    ("alpha-negative", _set("alpha", -1)),
    ("alpha-nan", _set("alpha", NAN)),
    ("alpha-str", _set("alpha", "x")),
    ("gamma-above-one", _set("gamma", 2.0)),
    ("gamma-null", _set("gamma", None)),
    ("n_step-zero", _set("n_step", 0)),
    ("num_envs-three", _set("num_envs", 3)),
    ("num_envs-zero", _set("num_envs", 0)),
    ("size-above-capacity", _set("size", 9)),
    ("size-negative", _set("size", -1)),
    ("size-other-than-tensors", _set("size", 3)),
    ("position-at-capacity", _set("position", 8)),
    ("position-not-size", _set("position", 2)),
    ("position-str", _set("position", "4")),
    ("max_leaf-nan", _set("max_leaf", NAN)),
    ("max_leaf-inf", _set("max_leaf", INF)),
    ("max_leaf-below-one", _set("max_leaf", 0.5)),
    ("max_leaf-below-leaves", _set("max_leaf", 1.5)),
    ("max_leaf-overflowing", _set("max_leaf", 1e308)),
    ("fields-list", _set("fields", [])),
    ("fields-bad-dtype", lambda m: m["fields"].__setitem__("reward", [[], "float99"])),
    ("fields-bad-shape", lambda m: m["fields"].__setitem__("state", [[4], "float32"])),
    ("fields-shape-str", lambda m: m["fields"].__setitem__("state", [["3"], "float32"])),
    ("fields-dropped", lambda m: m["fields"].pop("state")),
    ("next_fields-unknown", _set("next_fields", ["next_state"])),
    ("next_fields-str", _set("next_fields", "state")),
    ("next_fields-unhashable", _set("next_fields", [["state"]])),
    ("next_fields-int", _set("next_fields", [3])),
    ("version-true", _set("version", True)),
    ("n_step-huge", _set("n_step", 2**70)),
    ("n_step-float", _set("n_step", 2.0)),
    ("size-huge", _set("size", 2**70)),
    ("fields-no-done", lambda m: m["fields"].pop("done")),
    ("fields-reward-shape", lambda m: m["fields"].__setitem__("reward", [[2], "float32"])),
    ("fields-reserved-discount", lambda m: m["fields"].__setitem__("discount", m["fields"].pop("state"))),
    ("fields-reserved-n", lambda m: m["fields"].__setitem__("n_state", m["fields"].pop("state"))),
    ("fields-dtype-not-stored", lambda m: m["fields"].__setitem__("reward", [[], "float8_e4m3fn"])),
    ("fields-dtype-not-a-dtype", lambda m: m["fields"].__setitem__("reward", [[], "Tensor"])),
    ("fields-dtype-other-code", lambda m: m["fields"].__setitem__("reward", [[], "uint32"])),
    ("fields-spec-dict", lambda m: m["fields"].__setitem__("state", {"shape": [3], "dtype": "float32"})),
    ("fields-shape-bool", lambda m: m["fields"].__setitem__("state", [[True], "float32"])),
]
TENSOR_TAMPERING = [
    ("leaves-negative", lambda t: t["leaf_priorities"].__setitem__(0, -1.0)),
    ("leaves-nan", lambda t: t["leaf_priorities"].__setitem__(0, NAN)),
    ("leaves-f32", lambda t: t.__setitem__("leaf_priorities", t["leaf_priorities"].float())),
    ("leaves-short", lambda t: t.__setitem__("leaf_priorities", t["leaf_priorities"][:2])),
    ("leaves-missing", lambda t: t.pop("leaf_priorities")),
    ("field-missing", lambda t: t.pop("field.state")),
    ("field-extra", lambda t: t.__setitem__("field.extra", torch.zeros(4))),
    ("field-wrong-dtype", lambda t: t.__setitem__("field.reward", t["field.reward"].double())),
    ("field-uint16-for-float32", lambda t: t.__setitem__("field.reward", torch.zeros(4, dtype=torch.uint16))),
    ("field-more-rows", lambda t: t.__setitem__("field.state", torch.zeros(5, 3))),
    ("leaves-more-rows", lambda t: t.__setitem__("leaf_priorities", torch.ones(5, dtype=torch.float64))),
    ("leaves-inf", lambda t: t["leaf_priorities"].__setitem__(1, INF)),
]


def _write_raw(text: bytes):
    def make(src: str, dst: str) -> None:
        with open(dst, "wb") as f:
            f.write(text)

    return make


def _truncate(n: int):
    def make(src: str, dst: str) -> None:
        with open(src, "rb") as f:
            data = f.read()
        with open(dst, "wb") as f:
            f.write(data[:n])

    return make


FILES = (
    [pytest.param((lambda src, dst, c=c: _rewrite(src, dst, meta_change=c)), id=f"meta-{i}") for i, c in META_TAMPERING]
    + [
        pytest.param((lambda src, dst, c=c: _rewrite(src, dst, tensor_change=c)), id=f"tensor-{i}")
        for i, c in TENSOR_TAMPERING
    ]
    + [
        pytest.param((lambda src, dst: _rewrite(src, dst, raw_meta="{not json")), id="meta-not-json"),
        pytest.param((lambda src, dst: _rewrite(src, dst, raw_meta="[1, 2]")), id="meta-not-object"),
        pytest.param((lambda src, dst: save_file({"x": torch.zeros(2)}, dst)), id="foreign-safetensors"),
        pytest.param(_write_raw(b""), id="empty-file"),
        pytest.param(_write_raw(b"\x00" * 64), id="zeros"),
        pytest.param(_write_raw(b"PK\x03\x04 not a replay"), id="zip-header"),
        pytest.param(_truncate(60), id="truncated-header"),
        pytest.param(_truncate(-1), id="truncated-data"),
        pytest.param((lambda src, dst: os.mkdir(dst)), id="directory"),
        pytest.param((lambda src, dst: None), id="missing"),
    ]
)


def test_truncated_data_case_is_shorter_than_the_file(replay, tmp_path):
    src = str(tmp_path / "ok.safetensors")
    replay.save(src)
    _truncate(-1)(src, str(tmp_path / "cut"))
    assert os.path.getsize(tmp_path / "cut") == os.path.getsize(src) - 1


@pytest.mark.parametrize("make", FILES)
def test_a_tampered_replay_file_is_refused_naming_it(replay, tmp_path, make):
    src = str(tmp_path / "ok.safetensors")
    replay.save(src)
    bad = str(tmp_path / "bad.safetensors")
    make(src, bad)
    before = files_digest(str(tmp_path))
    with pytest.raises(ReplayFileError) as info:
        PrioritizedReplay.load(bad)
    assert bad in str(info.value)
    assert files_digest(str(tmp_path)) == before
    assert len(PrioritizedReplay.load(src)) == len(replay)


def test_an_n_step_replay_with_an_integer_reward_is_refused_naming_the_file(tmp_path):
    """The constructor's own rule (n-step returns need a float reward) applies to a file too, named with it."""
    src = str(tmp_path / "ok.safetensors")
    r = PrioritizedReplay(4, FIELDS, n_step=3)
    r.add(state=torch.zeros(2, 3), reward=torch.ones(2), done=torch.zeros(2, dtype=torch.bool))
    r.save(src)
    bad = str(tmp_path / "bad.safetensors")
    _rewrite(
        src,
        bad,
        meta_change=lambda m: m["fields"].__setitem__("reward", [[], "int64"]),
        tensor_change=lambda t: t.__setitem__("field.reward", t["field.reward"].long()),
    )
    with pytest.raises(ReplayFileError, match="n-step") as info:
        PrioritizedReplay.load(bad)
    assert bad in str(info.value)


# ------------------------------------------------------------------------------------------ any value
SETTINGS = ["capacity", "alpha", "n_step", "gamma", "num_envs", "size", "position", "max_leaf"]
VALUES = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, 2, 4, 8, 16, -1, 0.5, 1.0, 4.0, 1e308, "1", "", None, [], {}, True, False]),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(SETTINGS), value=VALUES)
def test_any_value_in_any_setting_is_kept_exactly_or_refused_naming_the_file(replay, tmp_path, key, value):
    """No silent coercion, no late failure: a setting either loads as written (and the replay samples) or is
    refused with a ReplayFileError naming the file."""
    src = str(tmp_path / "ok.safetensors")
    replay.save(src)
    bad = str(tmp_path / "bad.safetensors")
    _rewrite(src, bad, meta_change=_set(key, value))
    try:
        back = PrioritizedReplay.load(bad)
    except ReplayFileError as exc:
        assert str(exc).startswith(bad), str(exc)
        return
    loaded = {
        "capacity": back.capacity,
        "alpha": back.alpha,
        "n_step": back.n_step,
        "gamma": back.gamma,
        "num_envs": back.num_envs,
        "size": len(back),
        "position": back.position,
        "max_leaf": back.max_leaf_priority,
    }[key]
    assert loaded == value and not isinstance(value, bool), (key, loaded, value)
    torch.testing.assert_close(back.leaf_priorities(), replay.leaf_priorities())
    batch, _, weights = back.sample(4, 0.4)
    assert torch.isfinite(weights).all() and batch["state"].shape == (4, 3)
