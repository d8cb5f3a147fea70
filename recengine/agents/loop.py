"""The feedback loop: recommend -> simulated response -> store -> update, over many simulated users at once.

    result = train(agent, env, LoopConfig(...), eval_env=...)      # learning curve, updates/s
    metrics = evaluate(policy, eval_env, seed=...)                 # return/session, CTR, coverage, diversity

`env` is a vectorised simulator (recengine.env.VecRecSim): `reset(seed=...) -> (obs, info)` and
`step(slates) -> (obs, rewards, terminated, truncated, info)` with every finished user's session restarted
in place (obs holds the new session's first observation, info["final_obs"] the one reached at the end,
info["click_position"] the clicked slate position or -1). `reset_env` / `step_env` below are the one place that
reads the simulator's return values.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from recengine.agents.config import LoopConfig
from recengine.agents.policy_base import Policy
from recengine.eval.stats import mean_ci, paired_diff


@dataclass
class Step:
    """One vectorised step, in the form the policies store."""

    obs: object
    slates: torch.Tensor  # (B, k) int64
    clicks: torch.Tensor  # (B,) int64 position in the slate that was clicked, -1 = no click
    rewards: torch.Tensor  # (B,) float32
    next_obs: object  # observation after the step (the session's last one when done)
    done: torch.Tensor  # (B,) bool: the session ended (terminated or truncated)
    terminated: torch.Tensor  # (B,) bool: ended by the user (no bootstrapping past it)
    reset_obs: object  # the observation the loop continues from (new sessions where done)


def reset_env(env, seed: int):
    """The first observation of a vectorised simulator (VecRecSim.reset returns (obs, info))."""
    out = env.reset(seed=seed)
    return out[0] if isinstance(out, tuple) else out


def step_env(env, obs, slates: torch.Tensor) -> Step:
    """Step the simulator with (B, k) slates and normalise what comes back."""
    next_obs, rewards, terminated, truncated, info = env.step(slates.cpu().numpy())
    terminated = torch.as_tensor(np.asarray(terminated), dtype=torch.bool)
    truncated = torch.as_tensor(np.asarray(truncated), dtype=torch.bool)
    rewards = torch.as_tensor(np.asarray(rewards), dtype=torch.float32)
    if "click_position" in info:
        clicks = torch.as_tensor(np.asarray(info["click_position"]), dtype=torch.int64)
    else:
        clicks = torch.where(rewards > 0, 0, -1)
    final_obs = info.get("final_obs")
    return Step(
        obs,
        slates,
        clicks,
        rewards,
        final_obs if final_obs is not None else next_obs,
        terminated | truncated,
        terminated,
        next_obs,
    )


@dataclass
class SessionTracker:
    """Accumulates per-user session returns and reports those of finished sessions."""

    num_envs: int
    running: torch.Tensor = None
    finished: list = field(default_factory=list)

    def __post_init__(self):
        self.running = torch.zeros(self.num_envs)

    def add(self, rewards: torch.Tensor, done: torch.Tensor) -> None:
        self.running += rewards
        if done.any():
            self.finished += self.running[done].tolist()
            self.running[done] = 0.0

    def pop_mean(self) -> float:
        out = float(np.mean(self.finished)) if self.finished else float("nan")
        self.finished = []
        return out


def slate_diversity(slates: torch.Tensor, item_vectors: torch.Tensor | None) -> float:
    """Mean over slates of the mean pairwise (1 - cosine similarity) of the slate's item vectors."""
    if item_vectors is None or slates.shape[1] < 2:
        return float("nan")
    v = torch.nn.functional.normalize(item_vectors[slates].float(), dim=-1)  # (B, k, d)
    sim = v @ v.transpose(1, 2)
    k = slates.shape[1]
    off_diag = (sim.sum((1, 2)) - sim.diagonal(dim1=1, dim2=2).sum(1)) / (k * (k - 1))
    return float((1.0 - off_diag).mean())


StepHook = Callable[[Step], None]
"""called with every vectorised step the loop takes (e.g. to log (observation, slate, click) records for
off-policy evaluation); it must not change the step"""


@torch.no_grad()
def evaluate(
    policy: Policy,
    env,
    *,
    seed: int = 12345,
    item_vectors: torch.Tensor | None = None,
    max_steps: int = 10_000,
    on_step: StepHook | None = None,
) -> dict[str, float]:
    """Greedy value of `policy`: one session per simulated user of `env` (num_envs sessions), from a fixed seed.

    Returns avg_return (clicks per session), ctr (clicks per slate), coverage (share of the catalogue shown at
    least once), diversity (see slate_diversity), sessions/steps counts and session_returns (a list of num_envs floats),
    the return of each session: slot b's session is the same user with the same random draws for every policy
    evaluated from the same seed, so two policies' returns pair up session by session (recengine.eval.stats).
    `on_step` sees every step, including those of slots whose first session has already ended.
    """
    obs = reset_env(env, seed)
    num_envs = env.num_envs
    alive = torch.ones(num_envs, dtype=torch.bool)
    returns = torch.zeros(num_envs)
    shown = torch.zeros(env.num_items, dtype=torch.bool)
    slates_shown, clicks, div_sum, div_n = 0, 0.0, 0.0, 0
    for _ in range(max_steps):
        slates = policy.act(obs, explore=False)
        step = step_env(env, obs, slates)
        if on_step is not None:
            on_step(step)
        live = slates[alive]
        shown[live.reshape(-1)] = True
        rewards = step.rewards * alive
        returns += rewards
        clicks += float(rewards.sum())
        slates_shown += int(alive.sum())
        d = slate_diversity(live, item_vectors)
        if d == d:
            div_sum += d * live.shape[0]
            div_n += live.shape[0]
        alive &= ~step.done
        obs = step.reset_obs
        if not alive.any():
            break
    return {
        "avg_return": float(returns.mean()),
        "ctr": clicks / max(slates_shown, 1),
        "coverage": float(shown.float().mean()),
        "diversity": div_sum / div_n if div_n else float("nan"),
        "sessions": num_envs,
        "avg_session_length": slates_shown / num_envs,
        "session_returns": returns.double().tolist(),
    }


def train(
    agent: Policy,
    env,
    cfg: LoopConfig,
    *,
    eval_env=None,
    item_vectors: torch.Tensor | None = None,
    desc: str | None = None,
    eval_seed: int = 12345,
    on_step: StepHook | None = None,
) -> dict:
    """Run the feedback loop for cfg.total_steps vectorised steps; evaluate greedily every cfg.eval_every (on the
    eval_env sessions of `eval_seed`, the same at every point).

    Returns {"curve": [...], "updates": n, "train_seconds": s, "updates_per_s": r, "final": metrics,
    "curve_gain": ci} where each curve point holds the step, the recommendations served so far, the greedy
    avg_return (with its 95% interval return_ci95) / ctr and the mean return of the exploring sessions that
    finished since the previous point, and curve_gain is the last point's return minus the first's, paired
    over the same evaluation sessions (recengine.eval.stats.paired_diff; None with fewer than two points).
    Evaluation time is not training time. `on_step` sees every exploring step (not the evaluations' steps).
    """
    torch.manual_seed(cfg.seed)
    obs = reset_env(env, cfg.seed)
    tracker = SessionTracker(env.num_envs)
    curve: list[dict] = []
    train_seconds, last_stats = 0.0, {}
    first_returns, last_returns = [], []  # per-session returns of the first and the latest curve point

    def record(step_index: int) -> None:
        if eval_env is None:
            return
        m = evaluate(agent, eval_env, seed=eval_seed, item_vectors=item_vectors)  # the same sessions each time
        ci = mean_ci(m["session_returns"])
        curve.append(
            {
                "step": step_index,
                "recommendations": step_index * env.num_envs,
                "avg_return": m["avg_return"],
                "return_ci95": [ci["ci_low"], ci["ci_high"]],
                "ctr": m["ctr"],
                "train_return": tracker.pop_mean(),
                **{k: v for k, v in last_stats.items() if isinstance(v, (int, float))},
            }
        )
        if not first_returns:
            first_returns.append(m["session_returns"])
        last_returns[:] = [m["session_returns"]]

    record(0)
    bar = tqdm(
        range(1, cfg.total_steps + 1),
        desc=desc or getattr(agent, "name", "agent"),
        unit="step",
        disable=not cfg.progress,
        file=sys.stderr,
        leave=False,
    )
    for t in bar:
        start = time.perf_counter()
        slates = agent.act(obs, explore=True)
        step = step_env(env, obs, slates)
        agent.observe(step)
        stats = agent.update()
        train_seconds += time.perf_counter() - start
        if on_step is not None:  # outside the timed part: a hook's cost is not training time
            on_step(step)
        if stats:
            last_stats = stats
        tracker.add(step.rewards, step.done)
        obs = step.reset_obs
        if cfg.eval_every and (t % cfg.eval_every == 0 or t == cfg.total_steps):
            record(t)
            bar.set_postfix(ret=f"{curve[-1]['avg_return']:.2f}")
    updates = agent.num_updates()
    # the last curve point minus the first, paired over the curve's sessions: did the greedy policy improve?
    gain = paired_diff(last_returns[0], first_returns[0]) if len(curve) >= 2 else None
    return {
        "curve": curve,
        "updates": updates,
        "train_seconds": train_seconds,
        "updates_per_s": updates / train_seconds if train_seconds > 0 else float("nan"),
        "final": curve[-1] if curve else {},
        "curve_gain": gain,
    }
