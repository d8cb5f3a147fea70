"""The user simulator: dynamics against the formulas, determinism, gymnasium API, bad actions, vectorised == single."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from recengine.env import RecSimEnv, SimConfig, SlateSpace, UserModel, VecRecSim, synthetic_user_model
from recengine.env.calibrate import fit_mf, fit_user_model, from_movielens, last_items
from recengine.env.session_env import validate_slates


@pytest.fixture(scope="module")
def model():
    return synthetic_user_model(
        num_users=60,
        num_items=40,
        num_genres=5,
        dim=6,
        history_len=6,
        seed=3,
        config=SimConfig(slate_size=4, history_len=8, max_steps=30),
    )


def tiny_model(config: SimConfig, item_bias: float = 0.0) -> UserModel:
    """3 users, 12 items, 3 genres (items 4g..4g+3 are pure genre g)."""
    rng = np.random.default_rng(0)
    genres = np.zeros((12, 3))
    genres[np.arange(12), np.arange(12) // 4] = 1.0
    return UserModel(
        rng.normal(size=(3, 4)),
        rng.normal(size=(12, 4)),
        np.full(12, item_bias),
        genres,
        user_bias=rng.normal(size=3) * 0.1,
        config=config,
    )


# ------------------------------------------------------------------ a plain-Python copy of the dynamics


class ReferenceUser:
    """The module docstring's formulas, written out with no tricks."""

    def __init__(self, model: UserModel, config: SimConfig, user: int, history):
        self.m, self.c, self.u = model, config, user
        self.history = list(history)
        self.fatigue = np.zeros(model.num_genres)

    def probs(self, slate) -> np.ndarray:
        m, c, u = self.m, self.c, self.u
        v = []
        for j in slate:
            s = c.affinity_scale * (m.user_factors[u] @ m.item_factors[j] + m.item_bias[j] + m.user_bias[u])
            s -= c.fatigue_weight * (m.item_genres[j] @ self.fatigue)
            if j in self.history:
                s -= c.repeat_penalty
            v.append(s)
        v.append(c.no_click_utility)
        e = np.exp(np.array(v) - max(v))
        return e / e.sum()

    def update(self, slate, clicked: int):
        m, c = self.m, self.c
        self.fatigue = c.fatigue_decay * self.fatigue + c.fatigue_shown * m.item_genres[list(slate)].mean(axis=0)
        if clicked >= 0:
            self.fatigue += c.fatigue_click * m.item_genres[clicked]
            self.history = (self.history + [clicked])[-c.history_len :]


def test_choice_probabilities_follow_the_formula_along_a_session(model):
    cfg = SimConfig(
        slate_size=4,
        history_len=8,
        max_steps=200,
        quit_base=0.0,
        quit_growth=0.0,
        fatigue_weight=1.3,
        repeat_penalty=1.7,
        no_click_utility=-0.4,
        affinity_scale=1.2,
    )
    env = RecSimEnv(model, cfg)
    obs, info = env.reset(seed=5, options={"user_id": 7})
    assert obs["user_id"] == 7 and info["user_id"] == 7
    h0 = model.initial_histories[7][model.initial_histories[7] >= 0]
    np.testing.assert_array_equal(obs["history"][-len(h0) :], h0)
    assert (obs["history"][: -len(h0)] == -1).all()
    ref = ReferenceUser(model, cfg, 7, h0)
    rng = np.random.default_rng(0)
    clicks = 0
    for step in range(60):
        # favour a few items so repeats (history penalty) and genre build-up both happen
        slate = rng.choice(12, 4, replace=False) if step % 2 else rng.choice(40, 4, replace=False)
        expected = ref.probs(slate)
        np.testing.assert_allclose(env.choice_probabilities(slate), expected, rtol=1e-12, atol=1e-14)
        obs, reward, term, trunc, info = env.step(slate)
        np.testing.assert_allclose(info["choice_probs"], expected, rtol=1e-12, atol=1e-14)
        assert info["click_prob"] == pytest.approx(1 - expected[-1])
        pos = info["click_position"]
        assert reward == (1.0 if pos >= 0 else 0.0)
        assert info["clicked_item"] == (slate[pos] if pos >= 0 else -1)
        ref.update(slate, info["clicked_item"])
        clicks += pos >= 0
        hist = obs["history"][obs["history"] >= 0]
        np.testing.assert_array_equal(hist, ref.history[-cfg.history_len :])
        assert not term and not trunc
    assert 0 < clicks < 60  # both branches of the update were exercised


def test_choice_frequencies_match_probabilities():
    # the drawn responses follow the probabilities (first step of many fresh sessions of one user)
    cfg = SimConfig(slate_size=3, history_len=4)
    m = tiny_model(cfg)
    vec = VecRecSim(m, 20000)
    vec.reset(seed=1, user_ids=np.zeros(20000, np.int64))
    slates = np.tile(np.array([0, 5, 9]), (20000, 1))
    p = vec.choice_probabilities(slates)[0]
    _, _, _, _, info = vec.step(slates)
    pos = info["click_position"]
    freq = np.array([(pos == j).mean() for j in range(3)] + [(pos == -1).mean()])
    np.testing.assert_allclose(freq, p, atol=4 * np.sqrt(0.25 / 20000))


def test_fatigue_lowers_the_shown_genre_only():
    cfg = SimConfig(
        slate_size=3,
        history_len=4,
        quit_base=0.0,
        quit_growth=0.0,
        repeat_penalty=0.0,
        fatigue_weight=1.0,
        fatigue_decay=0.5,
        fatigue_shown=0.4,
        fatigue_click=0.0,
        max_steps=100,
    )
    env = RecSimEnv(tiny_model(cfg), cfg)
    env.reset(seed=0, options={"user_id": 1})
    probe = np.array([3, 4, 8])  # one item of each genre
    before = env.choice_probabilities(probe)
    for _ in range(6):
        env.step([0, 1, 2])  # genre 0 only
    after = env.choice_probabilities(probe)
    # fatigue on genre 0 = 0.4 * (1 + 0.5 + ... + 0.5^5); the genre-0 item lost exactly that much utility
    f0 = 0.4 * sum(0.5**i for i in range(6))
    odds_before = before[0] / before[1]
    odds_after = after[0] / after[1]
    assert odds_after == pytest.approx(odds_before * np.exp(-f0), rel=1e-9)
    assert after[1] / after[2] == pytest.approx(before[1] / before[2], rel=1e-9)  # genres 1, 2 untouched
    assert after[0] < before[0]
    # fatigue decays once the genre is no longer shown
    for _ in range(20):
        env.step([5, 6, 7])  # genre 1 only
    later = env.choice_probabilities(probe)
    assert later[0] / later[2] > after[0] / after[2]


def test_clicks_add_fatigue_and_enter_history():
    cfg = SimConfig(
        slate_size=2,
        history_len=3,
        quit_base=0.0,
        quit_growth=0.0,
        repeat_penalty=5.0,
        fatigue_weight=1.0,
        fatigue_decay=1.0,
        fatigue_shown=0.0,
        fatigue_click=0.7,
        max_steps=100,
    )
    m = tiny_model(cfg, item_bias=30.0)  # every slate is clicked
    env = RecSimEnv(m, cfg)
    env.reset(seed=0, options={"user_id": 2})
    p0 = env.choice_probabilities([0, 4])
    obs, r, *_, info = env.step([0, 4])
    assert r == 1.0
    clicked = info["clicked_item"]
    assert obs["history"][-1] == clicked
    other = 4 if clicked == 0 else 0
    p1 = env.choice_probabilities([0, 4])
    i, o = (0, 1) if clicked == 0 else (1, 0)
    # the clicked item lost fatigue_click (its genre) + repeat_penalty (now in history) relative to the other
    assert (p1[i] / p1[o]) == pytest.approx((p0[i] / p0[o]) * np.exp(-0.7 - 5.0), rel=1e-9)
    assert other not in obs["history"]


@pytest.mark.parametrize("always_click", [False, True])
def test_termination_hazard_follows_the_formula(always_click):
    cfg = SimConfig(slate_size=2, history_len=4, quit_base=0.1, quit_growth=0.2, max_steps=8)
    m = tiny_model(cfg, item_bias=40.0 if always_click else -40.0)
    n = 20000
    vec = VecRecSim(m, n)
    vec.reset(seed=11)
    alive = np.ones(n, bool)
    slates = np.tile(np.array([0, 1]), (n, 1))
    for t in range(1, cfg.max_steps + 1):
        _, rewards, term, trunc, info = vec.step(slates)
        assert (rewards[alive] == (1.0 if always_click else 0.0)).all()
        q = 0.1 if always_click else min(1.0, 0.1 + 0.2 * t)  # t consecutive steps without a click
        ended = term[alive].mean()
        tol = 4 * np.sqrt(max(q * (1 - q), 1e-4) / alive.sum()) + 1e-9
        assert ended == pytest.approx(q, abs=tol), f"step {t}"
        if t < cfg.max_steps:
            assert not trunc.any()
        else:  # the survivors are truncated at max_steps, never both
            assert (trunc[alive] == ~term[alive]).all()
        assert (info["episode_length"][alive & (term | trunc)] == t).all()
        alive &= ~(term | trunc)
        if not alive.any():
            break
    if not always_click:
        assert t == 5  # 0.1 + 0.2 * 5 >= 1: everybody has left by step 5


def test_streak_resets_on_click():
    # after a click the end probability drops back to quit_base; check against frequencies over many users
    cfg = SimConfig(
        slate_size=1,
        history_len=4,
        quit_base=0.0,
        quit_growth=0.3,
        max_steps=50,
        repeat_penalty=0.0,
        fatigue_weight=0.0,
    )
    genres = np.eye(2)
    m = UserModel(np.zeros((1, 1)), np.zeros((2, 1)), np.array([40.0, -40.0]), genres, config=cfg)
    n = 20000
    vec = VecRecSim(m, n)
    vec.reset(seed=2)
    no_click, click = np.array([[1]] * n), np.array([[0]] * n)
    _, _, term, _, _ = vec.step(no_click)  # streak 1 -> 0.3
    assert term.mean() == pytest.approx(0.3, abs=0.02)
    alive = ~term
    _, r, term, _, _ = vec.step(click)  # a click: streak 0 -> 0.0
    assert (r[alive] == 1).all() and not term[alive].any()
    _, _, term, _, _ = vec.step(no_click)  # streak 1 again -> 0.3
    assert term[alive].mean() == pytest.approx(0.3, abs=0.02)


def test_determinism_and_seeding(model):
    def run(seed, resets=3):
        env = RecSimEnv(model)
        out = []
        rng = np.random.default_rng(42)
        env.reset(seed=seed)
        for _ in range(resets):
            done = False
            while not done:
                obs, r, term, trunc, info = env.step(rng.choice(model.num_items, 4, replace=False))
                out.append((obs["user_id"], tuple(obs["history"]), r, term, trunc))
                done = term or trunc
            env.reset()
        return out

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_check_env(model):
    env = RecSimEnv(model, render_mode="ansi")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no spec" notice about render modes: not an API problem
        check_env(env, skip_render_check=True)
    env.reset(seed=0)
    env.step(env.action_space.sample())
    assert "user" in env.render()


def test_slate_space(model):
    space = SlateSpace(model.num_items, 4, seed=0)
    for _ in range(200):
        a = space.sample()
        assert a.dtype == np.int64 and len(set(a.tolist())) == 4 and space.contains(a)
    assert not space.contains(np.array([1, 1, 2, 3]))
    assert not space.contains(np.array([1, 2, 3, model.num_items]))
    with pytest.raises(ValueError):
        SlateSpace(3, 4)


@pytest.mark.parametrize(
    "action, error, match",
    [
        ([1, 2, 3], ValueError, "shape"),
        ([1, 2, 3, 4, 5], ValueError, "shape"),
        ([1, 2, 2, 3], ValueError, "more than once"),
        ([1, 2, 3, -1], IndexError, "out of range"),
        ([1, 2, 3, 40], IndexError, "out of range"),
        (np.array([1.0, 2.0, 3.0, 4.0]), ValueError, "integer"),
        (np.array([True, False, True, False]), ValueError, "integer"),
        (np.array([[1, 2, 3, 4]]), ValueError, "1-D"),
    ],
)
def test_bad_actions_raise_and_change_nothing(model, action, error, match):
    env, clean = RecSimEnv(model), RecSimEnv(model)
    env.reset(seed=4)
    clean.reset(seed=4)
    with pytest.raises(error, match=match):
        env.step(action)
    with pytest.raises(error, match=match):
        env.choice_probabilities(action)
    # the failed call changed nothing: both continue identically
    for a in ([0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]):
        o1, r1, t1, u1, _ = env.step(a)
        o2, r2, t2, u2, _ = clean.step(a)
        assert (o1["history"] == o2["history"]).all() and (r1, t1, u1) == (r2, t2, u2)
        if t1 or u1:
            break


def test_step_before_reset_and_after_end(model):
    env = RecSimEnv(model, SimConfig(slate_size=4, max_steps=1))
    with pytest.raises(RuntimeError):
        env.step([0, 1, 2, 3])
    env.reset(seed=0)
    env.step([0, 1, 2, 3])
    with pytest.raises(RuntimeError, match="reset"):
        env.step([0, 1, 2, 3])


def test_vec_bad_slates(model):
    vec = VecRecSim(model, 3)
    vec.reset(seed=0)
    good = np.array([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]])
    with pytest.raises(ValueError, match="shape"):
        vec.step(good[:2])
    bad = good.copy()
    bad[2, 3] = 8
    with pytest.raises(ValueError, match="row 2"):
        vec.step(bad)
    bad = good.copy()
    bad[1, 0] = 1000
    with pytest.raises(IndexError, match="1000"):
        vec.step(bad)
    with pytest.raises(ValueError):
        vec.step(good.astype(np.float32))
    with pytest.raises(IndexError):
        vec.reset(seed=0, user_ids=np.array([0, 1, model.num_users]))
    validate_slates(np.array([[2, 0]], dtype=np.uint8), 1, 2, 3)  # any integer dtype is fine


def test_vectorised_equals_single_envs(model):
    B = 6
    vec = VecRecSim(model, B)
    obs, _ = vec.reset(seed=100)
    envs = [RecSimEnv(model) for _ in range(B)]
    single = [e.reset(seed=100 + b)[0] for b, e in enumerate(envs)]
    for b in range(B):
        assert single[b]["user_id"] == obs["user_id"][b]
        np.testing.assert_array_equal(single[b]["history"], obs["history"][b])
        np.testing.assert_array_equal(single[b]["user_features"], obs["user_features"][b])
    rng = np.random.default_rng(0)
    ends = 0
    for _ in range(150):
        slates = np.stack([rng.choice(model.num_items, 4, replace=False) for _ in range(B)])
        np.testing.assert_array_equal(
            vec.choice_probabilities(slates), np.stack([e.choice_probabilities(s) for e, s in zip(envs, slates)])
        )
        obs, rewards, term, trunc, info = vec.step(slates)
        for b, e in enumerate(envs):
            o, r, t, u, inf = e.step(slates[b])
            assert (r, t, u) == (rewards[b], term[b], trunc[b])
            assert inf["clicked_item"] == info["clicked_item"][b]
            np.testing.assert_array_equal(o["history"], info["final_obs"]["history"][b])
            if t or u:
                ends += 1
                assert info["episode_length"][b] == inf["t"]
                o, _ = e.reset()
            np.testing.assert_array_equal(o["history"], obs["history"][b])
            assert o["user_id"] == obs["user_id"][b]
    assert ends > 10  # the autoreset path was exercised


def test_reset_draws_users_from_the_pool(model):
    pool = np.array([3, 17, 42])
    vec = VecRecSim(model, 500, user_pool=pool)
    obs, _ = vec.reset(seed=0)
    assert set(obs["user_id"].tolist()) == set(pool.tolist())
    env = RecSimEnv(model, user_pool=pool)
    assert {int(env.reset(seed=s)[0]["user_id"]) for s in range(60)} == set(pool.tolist())


# ------------------------------------------------------------------ calibration


def test_last_items():
    users = np.array([0, 1, 0, 0, 2, 0])
    items = np.array([5, 6, 7, 8, 9, 4])
    ts = np.array([10, 1, 30, 20, 5, 40])
    out = last_items(users, items, ts, 4, 3)
    np.testing.assert_array_equal(out, [[8, 7, 4], [-1, -1, 6], [-1, -1, 9], [-1, -1, -1]])


def test_fit_mf_ranks_the_observed_items_first():
    rng = np.random.default_rng(0)
    U, N = 80, 60
    P, Q = rng.normal(size=(U, 3)), rng.normal(size=(N, 3))
    top = np.argsort(-(P @ Q.T), axis=1)[:, :10]  # each user's 10 favourite items
    users = np.repeat(np.arange(U), 10)
    P_, Q_, bi, bu = fit_mf(users, top.reshape(-1), U, N, dim=8, epochs=150, seed=0)
    scores = P_ @ Q_.T + bi
    observed = np.zeros((U, N), bool)
    observed[users, top.reshape(-1)] = True
    # AUC of observed vs unobserved pairs, per user
    auc = np.mean([(scores[u][observed[u]][:, None] > scores[u][~observed[u]][None, :]).mean() for u in range(U)])
    assert auc > 0.95


def test_fit_user_model_hits_the_requested_click_rate():
    rng = np.random.default_rng(1)
    U, N, G = 50, 70, 4
    users = rng.integers(0, U, 800)
    items = (users * 7 + rng.integers(0, 12, 800)) % N  # users overlap in blocks of items
    genres = np.eye(G)[np.arange(N) % G]
    cfg = SimConfig(slate_size=3, history_len=5)
    m = fit_user_model(
        users,
        items,
        U,
        N,
        genres,
        ratings=rng.integers(1, 6, 800),
        timestamps=np.arange(800),
        config=cfg,
        dim=8,
        epochs=60,
        random_ctr=0.25,
        affinity_std=1.2,
    )
    assert m.affinity().std() == pytest.approx(1.2, rel=1e-6)
    np.testing.assert_array_equal(m.initial_histories, last_items(users, items, np.arange(800), U, 5))
    vec = VecRecSim(m, 4000)
    vec.reset(seed=0)
    slates = np.argsort(rng.random((4000, N)), axis=1)[:, :3]
    # the calibration ignores the repeat penalty of the starting history; measure with it off
    vec_no_rep = VecRecSim(m, 4000, config=SimConfig(slate_size=3, history_len=5, repeat_penalty=0.0))
    vec_no_rep.reset(seed=0)
    ctr = (1 - vec_no_rep.choice_probabilities(slates)[:, -1]).mean()
    assert ctr == pytest.approx(0.25, abs=0.02)


def test_from_movielens_adapter():
    # the attributes recengine.data.MovieLens exposes (CSR genres, categorical user features)
    ds = SimpleNamespace(
        user=np.array([0, 0, 1, 2, 2, 2]),
        item=np.array([0, 1, 1, 2, 3, 0]),
        rating=np.array([5, 3, 4, 1, 2, 5], np.float32),
        timestamp=np.array([3, 1, 2, 9, 8, 7]),
        num_users=3,
        num_items=4,
        user_features={"gender": np.array([0, 1, 1]), "age": np.array([2, 0, 1])},
        user_feature_sizes={"gender": 2, "age": 3},
        item_features={"genre_offsets": np.array([0, 1, 3, 3, 4]), "genre_ids": np.array([2, 0, 1, 1])},
        item_feature_sizes={"genre": 3, "year": 5},
    )
    m = from_movielens(ds, config=SimConfig(slate_size=2, history_len=3), dim=2, epochs=20)
    np.testing.assert_array_equal(m.item_genres, [[0, 0, 1], [0.5, 0.5, 0], [0, 0, 0], [0, 1, 0]])
    np.testing.assert_array_equal(m.user_features, [[1, 0, 0, 0, 1], [0, 1, 1, 0, 0], [0, 1, 0, 1, 0]])
    np.testing.assert_array_equal(m.initial_histories, [[-1, 1, 0], [-1, -1, 1], [0, 3, 2]])
    env = RecSimEnv(m)
    obs, _ = env.reset(seed=0, options={"user_id": 2})
    np.testing.assert_array_equal(obs["history"], [0, 3, 2])


def test_from_movielens_on_the_synthetic_dataset():
    from recengine.data import make_synthetic

    ds = make_synthetic(num_users=40, num_items=30, seed=0)
    m = from_movielens(ds, config=SimConfig(slate_size=3, history_len=5), dim=4, epochs=30)
    assert (m.num_users, m.num_items) == (40, 30)
    env = RecSimEnv(m)
    check_env(env, skip_render_check=True)


def test_a_slate_larger_than_the_catalog_is_refused():
    with pytest.raises(ValueError, match="slate_size"):
        RecSimEnv(UserModel(np.zeros((2, 3)), np.zeros((4, 3)), np.zeros(4), np.ones((4, 1))), SimConfig(slate_size=5))


def test_user_model_choice_probabilities_match_the_env(model):
    cfg = SimConfig(slate_size=4, history_len=8, max_steps=30, quit_base=0.0, quit_growth=0.0)
    env = RecSimEnv(model, cfg)
    rng = np.random.default_rng(0)
    for u in (0, 13, 59):
        env.reset(seed=1, options={"user_id": u})
        slate = rng.choice(model.num_items, cfg.slate_size, replace=False)
        # at a session start: the user's starting history, no fatigue
        np.testing.assert_array_equal(
            model.choice_probabilities(np.array([u]), slate[None])[0], env.choice_probabilities(slate)
        )
        for _ in range(3):
            env.step(rng.choice(model.num_items, cfg.slate_size, replace=False))
        s = env._slots  # the env's hidden state, handed over explicitly
        np.testing.assert_array_equal(
            model.choice_probabilities(np.array([u]), slate[None], s.history, s.fatigue, config=cfg)[0],
            env.choice_probabilities(slate),
        )
    with pytest.raises(ValueError, match="shape"):
        model.choice_probabilities(np.array([0]), np.arange(4))
    with pytest.raises(IndexError):
        model.choice_probabilities(np.array([model.num_users]), np.arange(4)[None])
