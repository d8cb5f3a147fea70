"""Off-policy evaluation inside the simulator, where the truth is known.

``collect_logs`` runs a logging slate policy and records every step with its propensity, ``on_policy_value``
runs a target policy for its true value (both through the one rollout loop, ``recengine.agents.rollout``),
``evaluate_offline`` estimates the target's return per session from the logs (IPS, SNIPS and DR with a fitted
click model and a fitted value model), and ``ope_check`` puts estimate and truth side by side. The estimators
themselves are NumPy and live in ``recengine.eval.ope``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recengine.agents.rollout import Step, rollout
from recengine.eval.ope import doubly_robust, importance_weights, ips, snips
from recengine.judging.slate_policies import EpsilonGreedySlatePolicy, SlatePolicy, as_slate_policy

__all__ = [
    "LoggedSteps",
    "collect_logs",
    "on_policy_value",
    "ChoiceRewardModel",
    "fit_reward_model",
    "fitted_q_values",
    "evaluate_offline",
    "ope_check",
]


@dataclass
class LoggedSteps:
    """Steps logged in the simulator, sorted by session then time (n rows, S sessions)."""

    obs: dict
    """the observation each slate was chosen for: history (n, L), user_id (n,), user_features (n, F)."""
    slates: np.ndarray
    """(n, k) int64 ordered slates shown."""
    rewards: np.ndarray
    """(n,) float64 clicks."""
    click_position: np.ndarray
    """(n,) int64 clicked position, -1 when none."""
    logging_probs: np.ndarray
    """(n,) float64 probability the logging policy gave the shown slate."""
    sessions: np.ndarray
    """(n,) int64 session id (contiguous rows per session)."""
    steps: np.ndarray
    """(n,) int64 step within the session."""
    num_sessions: int

    def __len__(self) -> int:
        return int(self.rewards.shape[0])

    def session_returns(self) -> np.ndarray:
        """(S,) the logged return of each session (the logging policy's own on-policy sample)."""
        _, inv = np.unique(self.sessions, return_inverse=True)
        return np.bincount(inv, weights=self.rewards, minlength=self.num_sessions)


class _SessionQuota:
    """Counts whole sessions per slot of a vectorised simulator until every slot has run its quota, so
    num_sessions sessions are run with no bias towards short ones; optionally logs every step of them."""

    def __init__(self, policy: SlatePolicy, num_sessions: int, num_slots: int, *, record: bool, progress: bool):
        self.policy, self.record, self.num_sessions = policy, record, num_sessions
        self.quota = np.full(num_slots, num_sessions // num_slots)
        self.quota[: num_sessions % num_slots] += 1
        self.first_id = np.concatenate([[0], np.cumsum(self.quota)[:-1]])
        self.done_sessions = np.zeros(num_slots, np.int64)
        self.t = np.zeros(num_slots, np.int64)
        self.returns = np.zeros(num_sessions)
        self.lengths = np.zeros(num_sessions, np.int64)
        self.rows: list[tuple] = []
        self.bar = None
        if progress:
            from recengine.progress import progress_bar

            self.bar = progress_bar(total=num_sessions, desc="sessions", unit="session", leave=False)

    def finished(self) -> bool:
        return not (self.done_sessions < self.quota).any()

    def __call__(self, step: Step) -> None:
        """The rollout hook: add the step's rewards to the sessions still within their slot's quota."""
        obs, slates = step.obs, step.slates.numpy()
        rewards, ended = step.rewards.numpy(), step.done.numpy()
        active = self.done_sessions < self.quota
        sid = self.first_id + np.minimum(self.done_sessions, self.quota - 1)
        if self.record:
            probs = self.policy.prob(obs, slates)
            a = np.flatnonzero(active)
            self.rows.append(
                (
                    {k: v[a] for k, v in obs.items()},
                    slates[a],
                    rewards[a].astype(np.float64),
                    step.clicks.numpy()[a],
                    probs[a],
                    sid[a],
                    self.t[a],
                )
            )
        np.add.at(self.returns, sid[active], rewards[active])
        self.lengths[sid[active]] += 1
        self.t = np.where(ended, 0, self.t + 1)
        finished = ended & active
        self.done_sessions += finished
        if self.bar is not None and finished.any():
            self.bar.update(int(finished.sum()))

    def logs(self) -> LoggedSteps:
        """The recorded steps, sorted by session then time."""
        rows = self.rows
        cat = lambda j: np.concatenate([r[j] for r in rows])  # noqa: E731
        sessions, steps = cat(5), cat(6)
        order = np.lexsort((steps, sessions))
        obs_all = {k: np.concatenate([r[0][k] for r in rows])[order] for k in rows[0][0]}
        return LoggedSteps(
            obs_all,
            cat(1)[order],
            cat(2)[order],
            cat(3)[order],
            cat(4)[order],
            sessions[order],
            steps[order],
            self.num_sessions,
        )


def _run_whole_sessions(
    model,
    policy: SlatePolicy,
    num_sessions: int,
    *,
    seed: int,
    num_envs: int,
    config,
    user_pool,
    record: bool,
    progress: bool = False,
) -> _SessionQuota:
    """Run num_sessions complete sessions of `model` with `policy` through the one rollout loop."""
    from recengine.env.vector_env import vector_env

    if num_sessions < 1:
        raise ValueError(f"num_sessions must be >= 1, got {num_sessions}")
    num_slots = min(num_envs, num_sessions)
    env = vector_env(model, num_slots, config=config, user_pool=user_pool)
    quota = _SessionQuota(policy, num_sessions, num_slots, record=record, progress=progress)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EED]))
    rollout(policy, env, seed=seed, rng=rng, until=quota.finished, hooks=[quota])
    if quota.bar is not None:
        quota.bar.close()
    return quota


def collect_logs(
    model,
    logging_policy,
    num_sessions: int,
    *,
    seed: int = 0,
    num_envs: int = 256,
    config=None,
    user_pool=None,
    progress: bool = False,
) -> LoggedSteps:
    """Run ``logging_policy`` (a SlatePolicy: it must know its probabilities) for ``num_sessions`` whole
    sessions of ``model`` (a ``SequentialUserModel`` or a ``UserModel``, stepped by ``recengine.env.vector_env``)
    and log every step with its propensity."""
    policy = as_slate_policy(logging_policy)
    logs = _run_whole_sessions(
        model,
        policy,
        num_sessions,
        seed=seed,
        num_envs=num_envs,
        config=config,
        user_pool=user_pool,
        record=True,
        progress=progress,
    ).logs()
    if (logs.logging_probs <= 0).any():
        raise ValueError("the logging policy gave probability 0 to a slate it chose; check its prob()")
    return logs


def on_policy_value(
    model,
    policy,
    num_sessions: int,
    *,
    seed: int = 1,
    num_envs: int = 256,
    config=None,
    user_pool=None,
    progress: bool = False,
) -> dict:
    """The true value of ``policy`` by running it: mean return per session (clicks), its standard
    error, CTR (clicks per slate) and mean session length."""
    pol = as_slate_policy(policy)
    run = _run_whole_sessions(
        model,
        pol,
        num_sessions,
        seed=seed,
        num_envs=num_envs,
        config=config,
        user_pool=user_pool,
        record=False,
        progress=progress,
    )
    returns, lengths = run.returns, run.lengths
    return {
        "mean_return": float(returns.mean()),
        "stderr": float(returns.std(ddof=1) / np.sqrt(len(returns))) if len(returns) > 1 else float("nan"),
        "ctr": float(returns.sum() / max(lengths.sum(), 1)),
        "mean_length": float(lengths.mean()),
        "num_sessions": int(num_sessions),
    }


# ============================================================================ reward model for DR


class ChoiceRewardModel:
    """A multinomial-logit click model fitted on logs: utility(u, j) = <p_u, q_j> + b_j - rep * [j in history],
    no-click utility 0; predicts P(click | user, history, slate). (It does not see fatigue: a model, not the truth.)"""

    def __init__(self, user_factors, item_factors, item_bias, repeat_coef: float):
        self.P, self.Q, self.b, self.rep = user_factors, item_factors, item_bias, float(repeat_coef)

    def click_prob(self, obs: dict, slates) -> np.ndarray:
        slates = np.asarray(slates, dtype=np.int64)
        users = np.asarray(obs["user_id"], dtype=np.int64)
        util = np.einsum("bd,bkd->bk", self.P[users], self.Q[slates]) + self.b[slates]
        seen = (slates[:, :, None] == np.asarray(obs["history"])[:, None, :]).any(axis=2)
        util = util - self.rep * seen
        m = np.maximum(util.max(axis=1), 0.0)
        e = np.exp(util - m[:, None]).sum(axis=1)
        return e / (e + np.exp(-m))


def fit_reward_model(
    logs: LoggedSteps,
    num_users: int,
    num_items: int,
    *,
    dim: int = 16,
    epochs: int = 100,
    lr: float = 0.1,
    l2: float = 1e-3,
    seed: int = 0,
) -> ChoiceRewardModel:
    """Fit a ChoiceRewardModel to the logged slates and clicks (full-batch Adam on the choice log-likelihood)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # many tiny ops: one thread is faster than several fighting over cores
    try:
        return _fit_reward_model(torch, logs, num_users, num_items, dim, epochs, lr, l2, seed)
    finally:
        torch.set_num_threads(threads)


def _fit_reward_model(torch, logs, num_users, num_items, dim, epochs, lr, l2, seed):

    gen = torch.Generator().manual_seed(seed)
    users = torch.as_tensor(logs.obs["user_id"], dtype=torch.int64)
    slates = torch.as_tensor(logs.slates)
    pos = torch.as_tensor(logs.click_position)
    k = slates.shape[1]
    target = torch.where(pos >= 0, pos, k)
    seen = torch.as_tensor(
        (logs.slates[:, :, None] == logs.obs["history"][:, None, :]).any(axis=2), dtype=torch.float32
    )
    P = torch.nn.Parameter(0.05 * torch.randn(num_users, dim, generator=gen))
    Q = torch.nn.Parameter(0.05 * torch.randn(num_items, dim, generator=gen))
    b = torch.nn.Parameter(torch.full((num_items,), -2.0))
    rep = torch.nn.Parameter(torch.zeros(()))
    opt = torch.optim.Adam([P, Q, b, rep], lr=lr)
    for _ in range(epochs):
        opt.zero_grad(set_to_none=True)
        util = (P[users][:, None, :] * Q[slates]).sum(-1) + b[slates] - rep * seen
        logits = torch.cat([util, torch.zeros(len(util), 1)], dim=1)
        loss = torch.nn.functional.cross_entropy(logits, target) + l2 * (P.square().sum() + Q.square().sum()) / len(
            util
        )
        loss.backward()
        opt.step()
    f = lambda t: t.detach().double().numpy()  # noqa: E731
    return ChoiceRewardModel(f(P), f(Q), f(b), float(rep.detach()))


# ============================================================================ a value model for sequential DR


def _no_click_streak(rewards: np.ndarray, sessions: np.ndarray) -> np.ndarray:
    """Consecutive logged steps without a click just before each row, within its session."""
    n = rewards.shape[0]
    rows = np.arange(n)
    start = np.concatenate([[True], sessions[1:] != sessions[:-1]])
    first = np.maximum.accumulate(np.where(start, rows, 0))  # first row of each row's session
    last_click = np.maximum.accumulate(np.where(rewards > 0, rows, -1))
    prev_click = np.concatenate([[-1], last_click[:-1]])
    return rows - np.maximum(prev_click, first - 1) - 1


def _value_features(rhat: np.ndarray, streak: np.ndarray, step_frac: np.ndarray) -> np.ndarray:
    s = np.eye(5)[np.minimum(streak, 4)]
    return np.column_stack(
        [np.ones_like(rhat), rhat, s * (1.0 - rhat)[:, None], s, step_frac, step_frac * rhat, step_frac**2]
    )


def fitted_q_values(
    logs: LoggedSteps, q_reward: np.ndarray, v_reward: np.ndarray, *, iterations: int | None = None, ridge: float = 1e-3
) -> tuple[np.ndarray, np.ndarray]:
    """Q^(x_t, a_t) and V^(x_t) = Q^(x_t, pi(x_t)) of the target's return-to-go, for sequential DR.

    Fitted-Q evaluation with a linear model on a few features of the logged state and action: the reward
    model's click probability of the action (``q_reward`` for the logged slate, ``v_reward`` for the
    target's), the no-click streak before the step and the step index. Cross-fitted over two halves of
    the sessions (each half's values come from the model fitted on the other), which keeps DR's
    control variates independent of the rewards they correct.
    """
    r = logs.rewards
    s = logs.sessions
    streak = _no_click_streak(r, s)
    frac = logs.steps / max(int(logs.steps.max()) + 1, 1)
    X_log = _value_features(q_reward, streak, frac)
    X_tgt = _value_features(v_reward, streak, frac)
    has_next = np.concatenate([s[1:] == s[:-1], [False]])
    nxt = np.minimum(np.arange(len(r)) + 1, len(r) - 1)
    iterations = iterations or int(logs.steps.max()) + 1  # enough to carry rewards back over a whole session
    _, fold = np.unique(s, return_inverse=True)
    fold = fold % 2
    q_hat, v_hat = np.zeros(len(r)), np.zeros(len(r))
    for f in (0, 1):
        fit = fold != f
        A = X_log[fit]
        gram = A.T @ A + ridge * len(A) * np.eye(A.shape[1])
        theta = np.zeros(A.shape[1])
        for _ in range(iterations):
            y = r + np.where(has_next, X_tgt[nxt] @ theta, 0.0)
            theta = np.linalg.solve(gram, A.T @ y[fit])
        q_hat[~fit] = X_log[~fit] @ theta
        v_hat[~fit] = X_tgt[~fit] @ theta
    return q_hat, v_hat


# ============================================================================ putting it together


class _Chunked(SlatePolicy):
    """Calls a policy on at most ``chunk`` observations at a time (the logs can be large)."""

    def __init__(self, policy: SlatePolicy, chunk: int):
        self.policy, self.chunk, self.deterministic = policy, int(chunk), policy.deterministic

    def _parts(self, obs):
        n = len(obs["user_id"])
        for a in range(0, n, self.chunk):
            yield slice(a, a + self.chunk), {k: v[a : a + self.chunk] for k, v in obs.items()}

    def act(self, obs, explore=False, rng=None):
        return np.concatenate([self.policy.act(o, explore, rng=rng) for _, o in self._parts(obs)])

    def prob(self, obs, slates):
        return np.concatenate([self.policy.prob(o, slates[sl]) for sl, o in self._parts(obs)])


def evaluate_offline(
    logs: LoggedSteps,
    target,
    *,
    reward_model=None,
    num_users: int | None = None,
    num_items: int | None = None,
    clip: float | None = None,
    dm_samples: int = 1,
    seed: int = 0,
    chunk: int = 4096,
) -> dict:
    """IPS, SNIPS and DR estimates of ``target``'s expected return per session from ``logs``.

    ``target``: a SlatePolicy, an agent with ``act(obs, explore=False)`` or a callable obs -> slates
    (the last two must be deterministic: the same observation always gives the same slate).
    ``reward_model``: anything with ``click_prob(obs, slates) -> (n,)``; when None a ChoiceRewardModel
    is fitted on the logs (needs num_users, num_items). v_target is the model's click probability of
    the target's slate, averaged over ``dm_samples`` draws when the target is stochastic. The target
    sees the logged observations ``chunk`` rows at a time.

    Keys: "ips", "snips", "dr" (per-session return; DR's control variates come from
    ``fitted_q_values``), "dm" (the fitted value model alone at session starts: biased, for
    comparison), "dr_immediate" (DR with the one-step reward model only), the per-decision (bandit)
    forms "ips_per_step", "snips_per_step", "dr_per_step", "logging_return" (the logging policy's own
    mean return), "ess" (effective sample size of the per-decision ratios), "num_steps", "num_sessions".
    """
    pol = _Chunked(as_slate_policy(target), chunk)
    if reward_model is None:
        if num_users is None or num_items is None:
            raise ValueError("give num_users and num_items to fit the reward model, or pass reward_model")
        reward_model = fit_reward_model(logs, num_users, num_items, seed=seed)
    target_probs = pol.prob(logs.obs, logs.slates)
    rng = np.random.default_rng(seed)
    draws = 1 if pol.deterministic else max(1, dm_samples)
    v = np.mean([reward_model.click_prob(logs.obs, pol.act(logs.obs, rng=rng)) for _ in range(draws)], axis=0)
    q = reward_model.click_prob(logs.obs, logs.slates)
    r, mu, s = logs.rewards, logs.logging_probs, logs.sessions
    w = importance_weights(target_probs, mu, clip)
    q_ret, v_ret = fitted_q_values(logs, q, v)
    return {
        "ips": ips(r, target_probs, mu, sessions=s, clip=clip),
        "snips": snips(r, target_probs, mu, sessions=s, clip=clip),
        "dr": doubly_robust(r, target_probs, mu, q_ret, v_ret, sessions=s, clip=clip),
        "dm": float(v_ret[logs.steps == 0].mean()),
        "dr_immediate": doubly_robust(r, target_probs, mu, q, v, sessions=s, clip=clip),
        "ips_per_step": ips(r, target_probs, mu, clip=clip),
        "snips_per_step": snips(r, target_probs, mu, clip=clip),
        "dr_per_step": doubly_robust(r, target_probs, mu, q, v, clip=clip),
        "logging_return": float(logs.session_returns().mean()),
        "ess": float(w.sum() ** 2 / max(np.square(w).sum(), 1e-300)),
        "num_steps": len(logs),
        "num_sessions": logs.num_sessions,
    }


def ope_check(
    model,
    target,
    logging_policy=None,
    *,
    epsilon: float = 0.1,
    num_sessions: int = 2000,
    num_eval_sessions: int | None = None,
    seed: int = 0,
    num_envs: int = 256,
    config=None,
    user_pool=None,
    clip: float | None = None,
    progress: bool = False,
) -> dict:
    """OPE against the truth in the simulator: log ``num_sessions`` sessions with ``logging_policy``
    (default: epsilon-greedy around the target — the target's slate with probability 1 - epsilon, a
    uniformly random one otherwise), estimate the target's return per session with IPS / SNIPS / DR,
    and run the target on-policy (``num_eval_sessions``, default num_sessions, other seed) for its true value.

    The per-decision ratios grow like (1 / (1 - epsilon))^t along a session, so the estimates' spread grows
    fast with epsilon and session length (and, the ratios being heavy-tailed, a typical estimate falls
    below the truth); benchmarks/RESULTS.md ("Off-policy evaluation") has the errors measured per epsilon.

    Returns evaluate_offline's dict plus "true_return", "true_stderr", "true_ctr" and "rel_err_<est>"
    = |estimate - true| / true for ips, snips and dr.
    """
    cfg = config if config is not None else model.config
    pol = as_slate_policy(target)
    if logging_policy is None:
        logging_policy = EpsilonGreedySlatePolicy(pol, epsilon, model.num_items, cfg.slate_size)
    logs = collect_logs(
        model,
        logging_policy,
        num_sessions,
        seed=seed,
        num_envs=num_envs,
        config=cfg,
        user_pool=user_pool,
        progress=progress,
    )
    out = evaluate_offline(logs, pol, num_users=model.num_users, num_items=model.num_items, clip=clip, seed=seed)
    truth = on_policy_value(
        model,
        pol,
        num_eval_sessions or num_sessions,
        seed=seed + 1_000_003,
        num_envs=num_envs,
        config=cfg,
        user_pool=user_pool,
        progress=progress,
    )
    out.update(true_return=truth["mean_return"], true_stderr=truth["stderr"], true_ctr=truth["ctr"])
    for name in ("ips", "snips", "dr"):
        out[f"rel_err_{name}"] = abs(out[name] - truth["mean_return"]) / max(abs(truth["mean_return"]), 1e-12)
    return out
