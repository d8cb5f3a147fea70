"""save_simulator / load_simulator: round trip, and clear errors for missing, truncated and foreign files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from recengine.env.persistence import load_simulator, save_simulator
from recengine.env.sequential_sim import SequentialVecSim
from tests.env.conftest import make_tiny_sim


def test_round_trip_gives_the_same_choice_probabilities(tmp_path):
    sim = make_tiny_sim(seed=4)
    sim.fit_report = {"calibration": {"top_slate_ctr": 0.5}}
    path = str(tmp_path / "sim.safetensors")
    save_simulator(sim, path)
    back = load_simulator(path)
    users = np.arange(sim.num_users)
    slates = np.tile(np.array([2, 5, 11]), (sim.num_users, 1))
    np.testing.assert_array_equal(back.choice_probabilities(users, slates), sim.choice_probabilities(users, slates))
    assert back.session_model == sim.session_model and back.config == sim.config
    assert back.fit_report == sim.fit_report
    # and the same sessions, step for step
    runs = []
    for model in (sim, back):
        vec = SequentialVecSim(model, 8)
        vec.reset(seed=2)
        rng = np.random.default_rng(0)
        out = []
        for _ in range(10):
            obs, r, term, trunc, _ = vec.step(np.argsort(rng.random((8, sim.num_items)), 1)[:, :3])
            out.append((obs["history"].tolist(), r.tolist(), term.tolist()))
        runs.append(out)
    assert runs[0] == runs[1]


def test_the_response_model_scores_after_reload(tmp_path):
    sim = make_tiny_sim(seed=5)
    path = str(tmp_path / "sim.safetensors")
    save_simulator(sim, path)
    hist = np.array([[1, 2, 3], [-1, -1, 4]])
    torch.testing.assert_close(load_simulator(path).response.score_histories(hist), sim.response.score_histories(hist))


def test_a_missing_file_is_named(tmp_path):
    path = str(tmp_path / "nope.safetensors")
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        load_simulator(path)


def test_a_truncated_file_is_named(tmp_path):
    path = tmp_path / "sim.safetensors"
    save_simulator(make_tiny_sim(), str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="sim.safetensors"):
        load_simulator(str(path))


@pytest.mark.parametrize("metadata", [None, {"recengine": '{"format": "something else"}'}, {"recengine": "not json"}])
def test_a_foreign_file_is_named(tmp_path, metadata):
    path = str(tmp_path / "other.safetensors")
    save_file({"x": torch.zeros(2)}, path, metadata=metadata)
    with pytest.raises(ValueError, match="other.safetensors.*not a recengine simulator"):
        load_simulator(path)


def test_a_newer_format_version_is_refused(tmp_path):
    path = str(tmp_path / "sim.safetensors")
    save_file(
        {"x": torch.zeros(2)},
        path,
        metadata={"recengine": '{"format": "recengine.sequential_simulator", "version": 99}'},
    )
    with pytest.raises(ValueError, match="version 99"):
        load_simulator(path)


def test_saving_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "sim.safetensors"
    save_simulator(make_tiny_sim(seed=1), str(path))
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("recengine.env.persistence.save_file", broken)
    with pytest.raises(OSError):
        save_simulator(make_tiny_sim(seed=2), str(path))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["sim.safetensors"]


def test_the_population_survives_a_round_trip(tmp_path):
    sim = make_tiny_sim(seed=6)
    sim.population = np.array([1, 4, 7])
    path = str(tmp_path / "sim.safetensors")
    save_simulator(sim, path)
    back = load_simulator(path)
    np.testing.assert_array_equal(back.population, [1, 4, 7])
    assert np.isin(SequentialVecSim(back, 16).reset(seed=0)[0]["user_id"], [1, 4, 7]).all()
