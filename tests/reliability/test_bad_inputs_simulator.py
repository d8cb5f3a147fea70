"""Tampered, truncated and foreign simulator files (recengine.env.save_simulator): refused at load with one
CheckpointError naming the file and the field or tensor at fault, the files untouched.

A table of tamperings (one behaviour per row: each metadata field and each tensor, against its range, its type
and the other fields), the broken files every reader meets, then a property test that writes any value into any
metadata field and expects it either refused naming the file and the field, or kept exactly as written."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import save_file

from recengine.checkpoint import CheckpointError
from recengine.env.persistence import load_simulator, save_simulator
from recengine.env.response_model import ResponseModel
from recengine.env.sequential_sim import SeqSimConfig, SequentialUserModel
from recengine.env.sessions import SessionModel
from recengine.nn import SequenceEncoder
from tests.reliability.cases import cut_file, files_digest, raw_file

NAN, INF = math.nan, math.inf
USERS, ITEMS, GENRES, AGES = 5, 10, 3, 4


def _simulator() -> SequentialUserModel:
    """A tiny simulator whose response model has an item feature table and a user feature table, fitted on a
    subset of users (so every tensor a simulator file can hold is there)."""
    rng = np.random.default_rng(0)
    feature_ids = torch.arange(ITEMS) % GENRES
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        encoder = SequenceEncoder(
            ITEMS,
            8,
            4,
            num_layers=1,
            num_heads=2,
            feature_dim=4,
            item_feature_tables=[("genre", GENRES)],
            item_feature_ids=feature_ids,
            item_feature_offsets=torch.arange(ITEMS + 1),
            user_feature_tables=[("age", AGES)],
            user_feature_ids=(torch.arange(USERS) % AGES).reshape(USERS, 1),
        )
    lengths = np.array([3, 0, 2, 4, 1])
    items = np.concatenate([rng.permutation(ITEMS)[:n] for n in lengths]).astype(np.int64)
    genres = np.zeros((ITEMS, GENRES))
    genres[np.arange(ITEMS), np.arange(ITEMS) % GENRES] = 1.0
    return SequentialUserModel(
        ResponseModel(encoder, torch.linspace(-1, 1, ITEMS), beta=1.5, popularity_weight=0.5),
        np.concatenate([[0], np.cumsum(lengths)]),
        items,
        genres,
        SessionModel(0.6, 0.5, 0.1, 12),
        no_click_offset=-0.5,
        user_features=rng.normal(size=(USERS, 2)),
        config=SeqSimConfig(slate_size=3, history_len=5, max_steps=6),
        fit_report={"calibration": {"top_slate_ctr": 0.4, "no_click_offset": -0.5}},
        population=np.array([0, 2, 3]),
    )


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> tuple[dict, dict]:
    """(tensors, the parsed metadata document) of a valid simulator file."""
    path = str(tmp_path_factory.mktemp("sim") / "sim.safetensors")
    save_simulator(_simulator(), path)
    with safe_open(path, framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, json.loads(f.metadata()["recengine"])


def _write(saved, path: str, change=None, raw: str | None = None) -> None:
    tensors, document = saved
    tensors, document = dict(tensors), json.loads(json.dumps(document))
    if change is not None:
        change(tensors, document)
    save_file(tensors, path, metadata={"recengine": raw if raw is not None else json.dumps(document)})


def _set(*keys_value):
    """Set document[keys...] = value (the value None removes the key)."""
    *keys, value = keys_value

    def apply(t, d):
        for k in keys[:-1]:
            d = d[k]
        if value is None:
            d.pop(keys[-1])
        else:
            d[keys[-1]] = value

    return apply


def _tensor(name, make):
    """Replace tensor `name` by make(old) (None removes it)."""

    def apply(t, d):
        value = make(t[name]) if name in t else make(None)
        if value is None:
            t.pop(name)
        else:
            t[name] = value

    return apply


def _edit(name, index, value):
    def make(old):
        new = old.clone()
        new[index] = value
        return new

    return _tensor(name, make)


DOCUMENT = [
    # (id, change, words the error must hold besides the file)
    ("format-other", _set("format", "recengine.replay"), "not a recengine simulator"),
    ("format-missing", _set("format", None), "not a recengine simulator"),
    ("version-2", _set("version", 2), "version 2"),
    ("version-str", _set("version", "1"), "version '1'"),
    ("version-true", _set("version", True), "version True"),
    ("architecture-list", _set("architecture", [8]), "'architecture'"),
    ("architecture-missing", _set("architecture", None), "'architecture'"),
    ("num-items-zero", _set("architecture", "num_items", 0), "'num_items'"),
    ("num-items-str", _set("architecture", "num_items", "10"), "'num_items'"),
    ("num-items-float", _set("architecture", "num_items", 10.0), "'num_items'"),
    ("num-items-huge", _set("architecture", "num_items", 2**40), "'num_items'"),
    ("num-items-more-than-held", _set("architecture", "num_items", 10**6), "more than the"),
    ("num-items-other", _set("architecture", "num_items", 11), "'architecture'"),
    ("num-items-missing", _set("architecture", "num_items", None), "'num_items'"),
    ("dim-zero", _set("architecture", "dim", 0), "'dim'"),
    ("dim-other", _set("architecture", "dim", 4), "do not match"),
    ("max-len-huge", _set("architecture", "max_len", 2**30), "'max_len'"),
    ("heads-not-dividing", _set("architecture", "num_heads", 3), "no buildable encoder"),
    ("layers-more", _set("architecture", "num_layers", 2), "missing"),
    ("layers-negative", _set("architecture", "num_layers", -1), "'num_layers'"),
    ("feature-dim-zero", _set("architecture", "feature_dim", 0), "'feature_dim'"),
    ("item-tables-str", _set("architecture", "item_feature_tables", "genre"), "'item_feature_tables'"),
    ("item-tables-rows-zero", _set("architecture", "item_feature_tables", [["genre", 0]]), "'item_feature_tables'"),
    ("item-tables-fewer-rows", _set("architecture", "item_feature_tables", [["genre", 2]]), "do not match"),
    ("item-tables-dropped", _set("architecture", "item_feature_tables", []), "unexpected"),
    ("user-tables-dropped", _set("architecture", "user_feature_tables", []), "unexpected"),
    ("user-tables-rows-huge", _set("architecture", "user_feature_tables", [["age", 2**40]]), "user_feature_tables"),
    ("beta-zero", _set("beta", 0.0), "beta"),
    ("beta-negative", _set("beta", -1.0), "beta"),
    ("beta-nan", _set("beta", NAN), "'beta'"),
    ("beta-inf", _set("beta", INF), "'beta'"),
    ("beta-str", _set("beta", "1.5"), "'beta'"),
    ("beta-missing", _set("beta", None), "'beta'"),
    ("popularity-negative", _set("popularity_weight", -0.1), "popularity_weight"),
    ("popularity-nan", _set("popularity_weight", NAN), "'popularity_weight'"),
    ("beta-huge", _set("beta", 1e6), "beta"),
    ("popularity-huge", _set("popularity_weight", 1e300), "popularity_weight"),
    ("no-click-huge", _set("no_click_offset", 1e308), "no_click_offset"),
    ("no-click-nan", _set("no_click_offset", NAN), "'no_click_offset'"),
    ("no-click-inf", _set("no_click_offset", -INF), "'no_click_offset'"),
    ("no-click-str", _set("no_click_offset", "-0.5"), "'no_click_offset'"),
    ("no-click-bool", _set("no_click_offset", True), "'no_click_offset'"),
    ("config-list", _set("config", [3, 5, 6]), "'config'"),
    ("config-unknown-key", _set("config", "quit_base", 0.1), "quit_base"),
    ("config-slate-zero", _set("config", "slate_size", 0), "slate_size"),
    ("config-slate-float", _set("config", "slate_size", 2.5), "slate_size"),
    ("config-slate-str", _set("config", "slate_size", "3"), "slate_size"),
    ("config-slate-above-items", _set("config", "slate_size", ITEMS + 1), "slate_size"),
    ("config-history-huge", _set("config", "history_len", 2**40), "history_len"),
    ("config-max-steps-zero", _set("config", "max_steps", 0), "max_steps"),
    ("config-quit-above-one", _set("config", "no_click_quit", 1.5), "no_click_quit"),
    ("config-quit-nan", _set("config", "no_click_quit", NAN), "no_click_quit"),
    ("config-decay-inf", _set("config", "fatigue_decay", INF), "fatigue_decay"),
    ("config-fatigue-negative", _set("config", "fatigue_weight", -1.0), "fatigue_weight"),
    ("config-fatigue-nan", _set("config", "fatigue_click", NAN), "fatigue_click"),
    ("session-not-object", _set("session_model", "geometric"), "'session_model'"),
    ("session-weight-above-one", _set("session_model", "weight_short", 2.0), "weight_short"),
    ("session-p-zero", _set("session_model", "p_short", 0.0), "p_short"),
    ("session-p-nan", _set("session_model", "p_long", NAN), "p_long"),
    ("session-p-missing", _set("session_model", "p_long", None), "p_long"),
    ("session-count-negative", _set("session_model", "num_sessions", -1), "num_sessions"),
    ("session-count-float", _set("session_model", "num_sessions", 1.5), "num_sessions"),
    ("session-gap-zero", _set("session_model", "gap_seconds", 0), "gap_seconds"),
    ("session-unknown-key", _set("session_model", "hazard", [0.1]), "hazard"),
    ("fit-report-list", _set("fit_report", []), "'fit_report'"),
    ("fit-report-calibration-str", _set("fit_report", "calibration", "0.4"), "'calibration'"),
    ("fit-report-ctr-one", _set("fit_report", "calibration", "top_slate_ctr", 1.0), "'calibration'"),
    ("fit-report-ctr-nan", _set("fit_report", "calibration", "top_slate_ctr", NAN), "'calibration'"),
]

TENSORS = [
    ("embedding-wrong-shape", _tensor("encoder.item_embedding", lambda t: torch.zeros(ITEMS, 9)), "item_embedding"),
    (
        "embedding-wrong-dtype",
        _tensor("encoder.item_embedding", lambda t: t.double()),
        "item_embedding",
    ),
    ("embedding-missing", _tensor("encoder.item_embedding", lambda t: None), "item_embedding"),
    ("embedding-nan", _edit("encoder.item_embedding", (0, 0), NAN), "not finite"),
    ("encoder-extra", _tensor("encoder.extra", lambda t: torch.zeros(2)), "extra"),
    ("feature-id-outside-table", _edit("encoder.item_feature_ids", 1, GENRES), "'genre'"),
    ("feature-id-negative", _edit("encoder.item_feature_ids", 0, -1), "'genre'"),
    ("feature-ids-int32", _tensor("encoder.item_feature_ids", lambda t: t.int()), "item_feature_ids"),
    ("feature-offsets-fall", _edit("encoder.item_feature_offsets", 2, 0), "item_feature_offsets"),
    ("feature-offsets-short", _edit("encoder.item_feature_offsets", -1, ITEMS - 1), "item_feature_offsets"),
    ("feature-offsets-missing", _tensor("encoder.item_feature_offsets", lambda t: None), "item_feature_offsets"),
    ("user-feature-outside-table", _edit("encoder.user_feature_ids", (0, 0), AGES), "'age'"),
    ("item-bias-longer", _tensor("item_bias", lambda t: torch.zeros(ITEMS + 1)), "item_bias"),
    ("item-bias-nan", _edit("item_bias", 3, NAN), "item_bias"),
    ("item-bias-float64", _tensor("item_bias", lambda t: t.double()), "item_bias"),
    ("item-bias-missing", _tensor("item_bias", lambda t: None), "item_bias"),
    ("offsets-claim-more-rows", _edit("train_offsets", -1, 11), "train_offsets"),
    ("offsets-claim-fewer-rows", _edit("train_offsets", -1, 9), "train_offsets"),
    ("offsets-not-from-zero", _edit("train_offsets", 0, 1), "train_offsets"),
    ("offsets-fall", _edit("train_offsets", 2, 1), "train_offsets"),
    ("offsets-float", _tensor("train_offsets", lambda t: t.double()), "train_offsets"),
    ("offsets-no-user", _tensor("train_offsets", lambda t: torch.zeros(1, dtype=torch.int64)), "train_offsets"),
    ("offsets-2d", _tensor("train_offsets", lambda t: t.reshape(2, 3)), "train_offsets"),
    ("train-item-outside-catalog", _edit("train_items", 0, ITEMS), "train_items"),
    ("train-item-negative", _edit("train_items", 0, -1), "train_items"),
    ("train-items-int32", _tensor("train_items", lambda t: t.int()), "train_items"),
    ("genres-negative", _edit("item_genres", (0, 0), -1.0), "item_genres"),
    ("genres-nan", _edit("item_genres", (0, 0), NAN), "item_genres"),
    ("genres-fewer-rows", _tensor("item_genres", lambda t: t[:-1]), "item_genres"),
    ("genres-1d", _tensor("item_genres", lambda t: t[:, 0].contiguous()), "item_genres"),
    ("genres-no-column", _tensor("item_genres", lambda t: t[:, :0].contiguous()), "item_genres"),
    ("user-features-more-rows", _tensor("user_features", lambda t: torch.zeros(USERS + 1, 2)), "user_features"),
    ("user-features-inf", _edit("user_features", (1, 1), INF), "user_features"),
    ("user-features-float64", _tensor("user_features", lambda t: t.double()), "user_features"),
    ("population-outside-users", _edit("population", 0, USERS), "population"),
    ("population-empty", _tensor("population", lambda t: t[:0].contiguous()), "population"),
    ("population-float", _tensor("population", lambda t: t.double()), "population"),
    ("unknown-tensor", _tensor("extra", lambda t: torch.zeros(3)), "unexpected"),
]


def _check_refused(path: str, directory: str, words: str) -> CheckpointError:
    before = files_digest(directory)
    with pytest.raises(CheckpointError) as info:
        load_simulator(path)
    message = str(info.value)
    assert message.startswith(path) and words in message, message
    assert files_digest(directory) == before
    return info.value


def test_the_valid_file_loads_with_every_part(saved, tmp_path):
    """The baseline the tamperings spoil: the untouched file loads, with its feature tables and population."""
    path = str(tmp_path / "sim.safetensors")
    _write(saved, path)
    sim = load_simulator(path)
    assert sim.response.encoder.item_tables is not None and sim.response.encoder.user_tables is not None
    np.testing.assert_array_equal(sim.population, [0, 2, 3])
    assert sim.config == SeqSimConfig(slate_size=3, history_len=5, max_steps=6)
    probs = sim.choice_probabilities(np.array([0, 2]), np.array([[1, 2, 3], [4, 5, 6]]))
    assert np.isfinite(probs).all() and np.allclose(probs.sum(1), 1.0)


@pytest.mark.parametrize("change, words", [pytest.param(c, w, id=i) for i, c, w in DOCUMENT + TENSORS])
def test_a_tampered_simulator_file_is_refused_naming_it(saved, tmp_path, change, words):
    path = str(tmp_path / "sim.safetensors")
    _write(saved, path, change)
    _check_refused(path, str(tmp_path), words)


def test_loading_leaves_the_global_random_state_alone(saved, tmp_path):
    path = str(tmp_path / "sim.safetensors")
    _write(saved, path)
    before = torch.random.get_rng_state()
    load_simulator(path)
    assert torch.equal(torch.random.get_rng_state(), before)


def _header_claims_more(path: str, good: bytes) -> None:
    """A header whose last tensor claims more bytes than the file holds: nothing may be read past the end."""
    n = int.from_bytes(good[:8], "little")
    header = json.loads(good[8 : 8 + n])
    name = max((k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"][1])
    header[name]["data_offsets"][1] += 64
    header[name]["shape"][0] += 8 if header[name]["dtype"] == "I64" else 0
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little") + text + good[8 + n :])


BROKEN = [
    ("directory", lambda path, good: os.mkdir(path), "directory"),
    ("empty", raw_file(b""), "safetensors"),
    ("text", raw_file(b"hello, world"), "safetensors"),
    ("zeros", raw_file(bytes(200)), "safetensors"),
    ("truncated-header", cut_file(40), "safetensors"),
    ("truncated-data", cut_file(-1), "safetensors"),
    ("truncated-half", cut_file(-2000), "safetensors"),
    ("header-claims-more-than-the-file", _header_claims_more, "safetensors"),
    ("foreign-no-metadata", lambda path, good: save_file({"x": torch.zeros(3)}, path), "not a recengine simulator"),
    (
        "foreign-other-document",
        lambda path, good: save_file({"x": torch.zeros(3)}, path, metadata={"recengine": "[1]"}),
        "not a recengine simulator",
    ),
    (
        "metadata-not-json",
        lambda path, good: save_file({"x": torch.zeros(3)}, path, metadata={"recengine": "{"}),
        "not a recengine simulator",
    ),
]


@pytest.mark.parametrize("make, words", [pytest.param(m, w, id=i) for i, m, w in BROKEN])
def test_a_broken_simulator_file_is_refused_naming_it(saved, tmp_path, make, words):
    good_path = str(tmp_path / "good")
    _write(saved, good_path)
    with open(good_path, "rb") as f:
        good = f.read()
    os.remove(good_path)
    path = str(tmp_path / "bad.safetensors")
    make(path, good)
    _check_refused(path, str(tmp_path), words)


def test_a_missing_simulator_file_is_a_file_not_found_error_naming_it(tmp_path):
    path = str(tmp_path / "nope.safetensors")
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        load_simulator(path)


# ------------------------------------------------------------------------------------------ any value
FIELDS = [
    ("beta",),
    ("popularity_weight",),
    ("no_click_offset",),
    *(("config", k) for k in ("slate_size", "history_len", "max_steps", "no_click_quit", "fatigue_weight")),
    *(("config", k) for k in ("fatigue_decay", "fatigue_shown", "fatigue_click")),
    *(("session_model", k) for k in ("weight_short", "p_short", "p_long", "num_sessions", "gap_seconds")),
    *(("architecture", k) for k in ("num_items", "dim", "max_len", "num_layers", "num_heads", "feature_dim")),
]
VALUES = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, 2, -1, 0.5, 1.0, 1e308, "1", "", None, [], {}, True, False]),
)


def _get(document: dict, keys: tuple[str, ...]):
    for k in keys:
        document = document[k]
    return document


def _value_of(sim: SequentialUserModel, keys: tuple[str, ...]):
    """The loaded simulator's value of metadata field `keys`."""
    if keys[0] == "config":
        return getattr(sim.config, keys[1])
    if keys[0] == "session_model":
        return getattr(sim.session_model, keys[1])
    if keys[0] == "architecture":
        encoder = sim.response.encoder
        layer = encoder.transformer.layers[0]
        return {
            "num_items": encoder.num_items,
            "dim": encoder.dim,
            "max_len": encoder.max_len,
            "num_layers": len(encoder.transformer.layers),
            "num_heads": layer.self_attn.num_heads,
            "feature_dim": encoder.item_tables.specs[0].dim,
        }[keys[1]]
    if keys[0] in ("beta", "popularity_weight"):
        return getattr(sim.response, keys[0])
    return getattr(sim, keys[0])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keys=st.sampled_from(FIELDS), value=VALUES)
def test_any_value_in_any_field_is_kept_exactly_or_refused_naming_the_field(saved, tmp_path, keys, value):
    """No silent coercion, no late failure: a value either loads as written (and the simulator answers with
    finite probabilities) or is refused at load, naming the file and the field."""
    path = str(tmp_path / "sim.safetensors")
    _write(saved, path, _set(*keys, value))
    try:
        sim = load_simulator(path)
    except CheckpointError as exc:
        message = str(exc)
        assert message.startswith(path), message
        architecture = keys[0] == "architecture" and ("do not match" in message or "'architecture'" in message)
        assert keys[-1] in message or architecture, message
        return
    loaded = _value_of(sim, keys)
    assert type(loaded) is type(value) or isinstance(value, int) and isinstance(loaded, float), (loaded, value)
    assert loaded == value
    probs = sim.choice_probabilities(np.array([0]), np.array([[1, 2, 3]]))
    assert np.isfinite(probs).all()
