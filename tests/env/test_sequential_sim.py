"""The sequence-aware simulator: choice probabilities, consumption, fatigue, leaving, the gymnasium contract."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from recengine.env.sequential_sim import SeqSimConfig, SequentialSimEnv, SequentialVecSim, calibrate_no_click
from recengine.env.sessions import SessionModel
from tests.env.conftest import make_tiny_sim


def plain_probabilities(sim, user: int, history: list[int], slate: list[int], fatigue=None) -> np.ndarray:
    """The module docstring's formula, written out for one user without the simulator's code paths."""
    r = sim.response
    window = torch.tensor([history[-r.max_len :]], dtype=torch.int64)
    with torch.no_grad():
        q = r.encoder.last_state(window)[0].double()
        e = r.encoder.item_embeddings().double()
    u = r.beta * (e @ q + r.popularity_weight * r.item_bias.double())
    consumed = set(sim.train_items[sim.train_offsets[user] : sim.train_offsets[user + 1]].tolist()) | set(history)
    free = [j for j in range(sim.num_items) if j not in consumed]
    pi = torch.exp(u[free] - torch.logsumexp(u[free], 0))
    prior = dict(zip(free, pi.tolist()))
    f = np.zeros(sim.num_genres) if fatigue is None else fatigue
    w = np.array([prior.get(j, 0.0) * np.exp(-sim.config.fatigue_weight * sim.item_genres[j] @ f) for j in slate])
    out = np.append(w, np.exp(sim.no_click_offset))
    return out / out.sum()


def start_history(sim, user: int) -> list[int]:
    return sim.train_items[sim.train_offsets[user] : sim.train_offsets[user + 1]].tolist()


@pytest.mark.parametrize("user", [0, 3, 5])
def test_choice_probabilities_match_the_plain_formula_at_a_session_start(tiny_sim, user):
    env = SequentialSimEnv(tiny_sim)
    env.reset(seed=0, options={"user_id": user})
    slate = [1, 4, 9]
    expected = plain_probabilities(tiny_sim, user, start_history(tiny_sim, user), slate)
    np.testing.assert_allclose(env.choice_probabilities(slate), expected, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(
        tiny_sim.choice_probabilities(np.array([user]), np.array([slate]))[0], expected, rtol=1e-5, atol=1e-9
    )


def test_choice_probabilities_sum_to_one(tiny_sim):
    vec = SequentialVecSim(tiny_sim, 64)
    vec.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(5):
        slates = np.argsort(rng.random((64, tiny_sim.num_items)), 1)[:, :3]
        p = vec.choice_probabilities(slates)
        assert (p >= 0).all()
        np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-12)
        vec.step(slates)


def test_probabilities_follow_the_history_and_fatigue_after_clicks():
    never_leaves = SessionModel(1.0, 1e-9, 1e-9)
    sim = make_tiny_sim(
        no_click_offset=-30.0,
        session_model=never_leaves,
        config=SeqSimConfig(slate_size=3, history_len=8, max_steps=40, no_click_quit=0.0),
    )
    env = SequentialSimEnv(sim)
    user = 2
    env.reset(seed=5, options={"user_id": user})
    history, fatigue = start_history(sim, user), np.zeros(sim.num_genres)
    c = sim.config
    rng = np.random.default_rng(1)
    for _ in range(4):
        free = [j for j in range(sim.num_items) if j not in set(history) | set(start_history(sim, user))]
        slate = rng.choice(free, 3, replace=False).tolist()
        np.testing.assert_allclose(
            env.choice_probabilities(slate), plain_probabilities(sim, user, history, slate, fatigue), rtol=1e-5
        )
        obs, reward, *_, info = env.step(slate)
        assert reward == 1.0  # c = -30: a slate of unconsumed items is always clicked
        fatigue = (
            c.fatigue_decay * fatigue
            + c.fatigue_shown * sim.item_genres[slate].mean(0)
            + c.fatigue_click * sim.item_genres[info["clicked_item"]]
        )
        history.append(info["clicked_item"])
        assert obs["history"][-1] == info["clicked_item"]


def test_consumed_items_are_never_clicked():
    sim = make_tiny_sim(no_click_offset=-30.0)
    vec = SequentialVecSim(sim, 200)
    obs, _ = vec.reset(seed=1)
    consumed = {b: set(start_history(sim, u)) for b, u in enumerate(obs["user_id"])}
    rng = np.random.default_rng(2)
    clicks = 0
    for _ in range(30):
        slates = np.argsort(rng.random((200, sim.num_items)), 1)[:, :3]
        p = vec.choice_probabilities(slates)
        for b in range(200):
            for j, item in enumerate(slates[b]):
                if item in consumed[b]:
                    assert p[b, j] == 0.0
        obs, _, term, trunc, info = vec.step(slates)
        for b in range(200):
            assert info["consumed_in_slate"][b] == sum(int(i) in consumed[b] for i in slates[b])
            it = int(info["clicked_item"][b])
            if it >= 0:
                clicks += 1
                assert it not in consumed[b]
                consumed[b].add(it)
            if term[b] or trunc[b]:
                consumed[b] = set(start_history(sim, int(obs["user_id"][b])))
    assert clicks > 100


def test_the_observation_starts_from_the_real_train_history(tiny_sim):
    env = SequentialSimEnv(tiny_sim)
    for user in range(tiny_sim.num_users):
        obs, _ = env.reset(seed=0, options={"user_id": user})
        h = start_history(tiny_sim, user)[-tiny_sim.config.history_len :]
        expected = [-1] * (tiny_sim.config.history_len - len(h)) + h
        assert obs["history"].tolist() == expected
        np.testing.assert_allclose(obs["user_features"], tiny_sim.user_features[user])


def test_the_state_is_recomputed_only_for_sessions_whose_history_changed(monkeypatch):
    sim = make_tiny_sim(no_click_offset=0.0)
    vec = SequentialVecSim(sim, 300)
    vec.reset(seed=0)
    rows = []
    real = sim.response.states
    monkeypatch.setattr(sim.response, "states", lambda h: rows.append(len(h)) or real(h))
    rng = np.random.default_rng(0)
    slates = np.argsort(rng.random((300, sim.num_items)), 1)[:, :3]
    _, rewards, *_ = vec.step(slates)
    assert rows == ([int((rewards > 0).sum())] if (rewards > 0).any() else [])
    assert 0 < rows[0] < 300


@pytest.mark.parametrize("no_click_quit", [0.2, 0.35])
def test_sessions_without_clicks_end_with_the_streak_hazard(no_click_quit):
    cfg = SeqSimConfig(slate_size=3, history_len=8, max_steps=10, no_click_quit=no_click_quit)
    sim = make_tiny_sim(no_click_offset=40.0, config=cfg)  # never clicks
    n = 8000
    vec = SequentialVecSim(sim, n)
    vec.reset(seed=4)
    alive = np.ones(n, bool)
    slates = np.tile(np.array([1, 2, 3]), (n, 1))
    for t in range(1, cfg.max_steps + 1):
        _, rewards, term, trunc, _ = vec.step(slates)
        assert (rewards == 0).all()
        p = min(1.0, no_click_quit * t)
        tol = 4 * np.sqrt(max(p * (1 - p), 1e-4) / alive.sum()) + 1e-9
        assert term[alive].mean() == pytest.approx(p, abs=tol)
        alive &= ~(term | trunc)
        if not alive.any():
            break


def test_sessions_with_clicks_end_with_the_fitted_hazard():
    session = SessionModel(0.5, 0.6, 0.15)
    cfg = SeqSimConfig(slate_size=3, history_len=8, max_steps=5, no_click_quit=0.0)
    sim = make_tiny_sim(num_items=400, no_click_offset=-40.0, config=cfg, session_model=session)
    n = 8000
    vec = SequentialVecSim(sim, n)
    vec.reset(seed=9)
    alive = np.ones(n, bool)
    hazard = session.hazard(cfg.max_steps)
    rng = np.random.default_rng(3)
    for t in range(1, cfg.max_steps + 1):
        slates = np.argsort(rng.random((n, 400)), 1)[:, :3]
        _, rewards, term, trunc, info = vec.step(slates)
        assert (rewards[alive] == 1).all()
        tol = 4 * np.sqrt(hazard[t] * (1 - hazard[t]) / alive.sum())
        assert term[alive].mean() == pytest.approx(hazard[t], abs=tol), f"click {t}"
        if t == cfg.max_steps:
            assert (trunc[alive] == ~term[alive]).all()
        assert (info["episode_length"][alive & (term | trunc)] == t).all()
        alive &= ~(term | trunc)


def test_vectorised_equals_single_envs(tiny_sim):
    B = 5
    vec = SequentialVecSim(tiny_sim, B)
    obs, _ = vec.reset(seed=100)
    envs = [SequentialSimEnv(tiny_sim) for _ in range(B)]
    single = [e.reset(seed=100 + b)[0] for b, e in enumerate(envs)]
    for b in range(B):
        assert single[b]["user_id"] == obs["user_id"][b]
        np.testing.assert_array_equal(single[b]["history"], obs["history"][b])
    rng = np.random.default_rng(0)
    ends = 0
    for _ in range(60):
        slates = np.stack([rng.choice(tiny_sim.num_items, 3, replace=False) for _ in range(B)])
        obs, rewards, term, trunc, info = vec.step(slates)
        for b, e in enumerate(envs):
            o, r, t, u, inf = e.step(slates[b])
            assert (r, t, u) == (rewards[b], term[b], trunc[b])
            assert inf["clicked_item"] == info["clicked_item"][b]
            np.testing.assert_array_equal(o["history"], info["final_obs"]["history"][b])
            if t or u:
                ends += 1
                o, _ = e.reset()
            np.testing.assert_array_equal(o["history"], obs["history"][b])
            assert o["user_id"] == obs["user_id"][b]
    assert ends > 5


def test_determinism_of_a_seed(tiny_sim):
    def run(seed):
        vec = SequentialVecSim(tiny_sim, 16)
        vec.reset(seed=seed)
        rng = np.random.default_rng(0)
        out = []
        for _ in range(20):
            slates = np.argsort(rng.random((16, tiny_sim.num_items)), 1)[:, :3]
            obs, r, term, trunc, info = vec.step(slates)
            out.append((obs["history"].tolist(), r.tolist(), term.tolist(), info["clicked_item"].tolist()))
        return out

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_check_env(tiny_sim):
    env = SequentialSimEnv(tiny_sim, render_mode="ansi")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env, skip_render_check=True)
    env.reset(seed=0)
    env.step(env.action_space.sample())
    assert "user" in env.render()


@pytest.mark.parametrize(
    "slates, error, match",
    [
        (np.array([[0, 1, 2]] * 3), ValueError, "shape"),
        (np.array([[0, 1, 1]] * 4), ValueError, "more than once"),
        (np.array([[0, 1, 99]] * 4), IndexError, "99"),
        (np.array([[0.0, 1.0, 2.0]] * 4), ValueError, "integer"),
    ],
)
def test_bad_slates_raise(tiny_sim, slates, error, match):
    vec = SequentialVecSim(tiny_sim, 4)
    vec.reset(seed=0)
    with pytest.raises(error, match=match):
        vec.step(slates)


def test_step_before_reset_raises(tiny_sim):
    with pytest.raises(RuntimeError, match="reset"):
        SequentialVecSim(tiny_sim, 2).step(np.array([[0, 1, 2], [3, 4, 5]]))
    with pytest.raises(RuntimeError, match="reset"):
        SequentialSimEnv(tiny_sim).step([0, 1, 2])


@pytest.mark.parametrize(
    "field, value",
    [
        ("slate_size", 0),
        ("history_len", 0),
        ("max_steps", 0),
        ("no_click_quit", 1.5),
        ("fatigue_decay", -0.1),
        ("hazard_scale", -0.5),
    ],
)
def test_bad_config_raises(field, value):
    with pytest.raises(ValueError, match=field):
        SeqSimConfig(**{field: value})


def test_user_pool_restricts_the_users(tiny_sim):
    vec = SequentialVecSim(tiny_sim, 300, user_pool=np.array([2, 6]))
    obs, _ = vec.reset(seed=0)
    assert set(obs["user_id"].tolist()) == {2, 6}
    with pytest.raises(IndexError, match="user_pool"):
        SequentialVecSim(tiny_sim, 3, user_pool=np.array([99]))


@pytest.mark.parametrize(
    "population, error",
    [
        (np.array([], np.int64), ValueError),
        (np.array([1.0]), ValueError),
        (np.array([-1]), IndexError),
        (np.array([0, 9]), IndexError),
    ],
)
def test_a_bad_population_is_refused(population, error):
    sim = make_tiny_sim()
    with pytest.raises(error, match="population"):
        dataclasses.replace(sim, population=population)


@pytest.mark.parametrize("ctr", [0.0, 1.0, -0.1])
def test_calibration_rejects_impossible_rates(tiny_sim, ctr):
    with pytest.raises(ValueError, match="top_slate_ctr"):
        calibrate_no_click(tiny_sim, ctr)


@pytest.mark.parametrize("scale", [0.0, 0.5])
def test_the_hazard_scale_multiplies_the_fitted_hazard(scale):
    session = SessionModel(0.5, 0.6, 0.15)
    cfg = SeqSimConfig(slate_size=3, history_len=8, max_steps=4, no_click_quit=0.0, hazard_scale=scale)
    sim = make_tiny_sim(num_items=400, no_click_offset=-40.0, config=cfg, session_model=session)
    n = 6000
    vec = SequentialVecSim(sim, n)
    vec.reset(seed=9)
    slates = np.argsort(np.random.default_rng(3).random((n, 400)), 1)[:, :3]
    _, rewards, term, _, _ = vec.step(slates)
    p = scale * session.hazard(cfg.max_steps)[1]
    assert (rewards == 1).all()
    assert term.mean() == pytest.approx(p, abs=4 * np.sqrt(max(p * (1 - p), 1e-4) / n))


def test_a_frozen_state_keeps_the_start_state_and_still_consumes_the_click():
    cfg = SeqSimConfig(
        slate_size=3, history_len=8, max_steps=10, evolving_state=False, fatigue_weight=0.0, hazard_scale=0.0
    )  # no session ends after this one step
    sim = make_tiny_sim(num_items=30, no_click_offset=-40.0, config=cfg)  # always clicks
    vec = SequentialVecSim(sim, 4)
    vec.reset(seed=2, user_ids=np.array([0, 1, 2, 3]))
    before = vec.choice_weights()
    slates = np.argsort(-before, 1)[:, :3]
    vec.step(slates)
    after = vec.choice_weights()
    clicked = vec.get_obs()["history"][:, -1]
    for b in range(4):
        assert after[b, clicked[b]] == 0.0  # consumed
        free = before[b] > 0
        free[clicked[b]] = False
        # the same state q: the remaining items keep their relative odds, renormalised without the clicked one
        ratio = after[b, free] / before[b, free]
        np.testing.assert_allclose(ratio, ratio[0], rtol=1e-9)
    live = dataclasses.replace(cfg, evolving_state=True)
    vec = SequentialVecSim(make_tiny_sim(num_items=30, no_click_offset=-40.0, config=live), 4)
    vec.reset(seed=2, user_ids=np.array([0, 1, 2, 3]))
    vec.step(slates)
    free = vec.choice_weights()[0] > 0
    ratio = vec.choice_weights()[0, free] / before[0, free]
    assert np.ptp(ratio) > 1e-3  # the state moved with the click
