"""Training and greedy evaluation of a policy in the simulator, over many simulated users at once.

    result = train(agent, env, LoopConfig(...), eval_env=...)      # learning curve, updates/s
    metrics = evaluate(policy, eval_env, seed=...)                 # return/session, CTR, coverage, diversity

Both step the simulator through the one rollout loop (recengine.agents.rollout: recommend -> simulated response
-> store -> update); what differs is their hooks and when they stop. `Step`, `StepHook`, `reset_env` and
`step_env` are re-exported from there.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import numpy as np
import torch

from recengine.agents.config import LoopConfig
from recengine.agents.policy_base import Policy
from recengine.agents.rollout import Step, StepHook, reset_env, rollout, step_env
from recengine.eval.stats import mean_ci, paired_diff
from recengine.progress import progress_bar

__all__ = [
    "SessionTracker",
    "Step",
    "StepHook",
    "evaluate",
    "reset_env",
    "slate_diversity",
    "step_env",
    "train",
]


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
    num_envs = env.num_envs
    alive = torch.ones(num_envs, dtype=torch.bool)
    returns = torch.zeros(num_envs)
    shown = torch.zeros(env.num_items, dtype=torch.bool)
    totals = {"slates": 0, "clicks": 0.0, "div_sum": 0.0, "div_n": 0}

    def score(step: Step) -> None:
        nonlocal alive
        live = step.slates[alive]
        shown[live.reshape(-1)] = True
        rewards = step.rewards * alive
        returns.add_(rewards)
        totals["clicks"] += float(rewards.sum())
        totals["slates"] += int(alive.sum())
        d = slate_diversity(live, item_vectors)
        if d == d:
            totals["div_sum"] += d * live.shape[0]
            totals["div_n"] += live.shape[0]
        alive &= ~step.done

    hooks = [on_step, score] if on_step is not None else [score]
    rollout(policy, env, seed=seed, explore=False, max_steps=max_steps, until=lambda: not alive.any(), hooks=hooks)
    div_n = totals["div_n"]
    return {
        "avg_return": float(returns.mean()),
        "ctr": totals["clicks"] / max(totals["slates"], 1),
        "coverage": float(shown.float().mean()),
        "diversity": totals["div_sum"] / div_n if div_n else float("nan"),
        "sessions": num_envs,
        "avg_session_length": totals["slates"] / num_envs,
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

    The global torch RNG (dropout in the agent's updates draws from it) is seeded with cfg.seed inside a fork,
    so the run is reproducible and the caller's RNG state is the same afterwards.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return _train(agent, env, cfg, eval_env, item_vectors, desc, eval_seed, on_step)


def _train(
    agent: Policy,
    env,
    cfg: LoopConfig,
    eval_env,
    item_vectors: torch.Tensor | None,
    desc: str | None,
    eval_seed: int,
    on_step: StepHook | None,
) -> dict:
    """train's body, run with the global RNG forked and seeded."""
    tracker = SessionTracker(env.num_envs)
    curve: list[dict] = []
    last_stats: dict = {}
    first_returns, last_returns = [], []  # per-session returns of the first and the latest curve point
    bar = progress_bar(
        total=cfg.total_steps,
        desc=desc or getattr(agent, "name", "agent"),
        unit="step",
        disable=not cfg.progress,
        file=sys.stderr,
        leave=False,
    )

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

    t = 0

    def bookkeeping(step: Step) -> None:
        nonlocal t, last_stats
        t += 1
        if step.update_stats:
            last_stats = step.update_stats
        tracker.add(step.rewards, step.done)
        bar.update(1)
        if cfg.eval_every and (t % cfg.eval_every == 0 or t == cfg.total_steps):
            record(t)
            bar.set_postfix(ret=f"{curve[-1]['avg_return']:.2f}")

    record(0)
    hooks = [on_step, bookkeeping] if on_step is not None else [bookkeeping]
    run = rollout(agent, env, seed=cfg.seed, explore=True, learn=True, max_steps=cfg.total_steps, hooks=hooks)
    bar.close()
    updates = agent.num_updates()
    train_seconds = run.policy_seconds
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
