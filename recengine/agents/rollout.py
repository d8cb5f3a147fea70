"""The one rollout loop: a policy steps a vectorised simulator, hooks see every step.

    stats = rollout(policy, env, seed=0, explore=True, learn=True, max_steps=1_000, hooks=[on_step])

Training (`recengine.agents.loop.train`), greedy evaluation (`recengine.agents.loop.evaluate`) and the logging and
on-policy runs of off-policy evaluation (`recengine.judging.simulated_ope`) all go through `rollout`; they differ only
in their hooks and in when they stop.

`env` is a vectorised simulator (recengine.env.VecRecSim or SequentialVecSim): `reset(seed=...) -> (obs, info)` and
`step(slates) -> (obs, rewards, terminated, truncated, info)` with every finished user's session restarted in place
(obs holds the new session's first observation, info["final_obs"] the one reached at the end,
info["click_position"] the clicked slate position or -1). `reset_env` / `step_env` below are the one place that
reads the simulator's return values.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from recengine.agents.policy_base import Policy

__all__ = ["RolloutStats", "Step", "StepHook", "reset_env", "rollout", "step_env"]


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
    update_stats: dict[str, float] = field(default_factory=dict)
    """what the learner's update after this step returned ({} when nothing was learnt or the loop did not learn)"""


StepHook = Callable[[Step], None]
"""called with every vectorised step the loop takes (e.g. to log (observation, slate, click) records for
off-policy evaluation); it must not change the step"""


@dataclass
class RolloutStats:
    """What one rollout did: the vectorised steps taken and the seconds spent choosing, stepping and learning
    (the hooks' time excluded, so a hook's cost is never counted as the policy's)."""

    steps: int
    policy_seconds: float


def reset_env(env, seed: int):
    """The first observation of a vectorised simulator (VecRecSim.reset returns (obs, info))."""
    out = env.reset(seed=seed)
    return out[0] if isinstance(out, tuple) else out


def step_env(env, obs, slates) -> Step:
    """Step the simulator with (B, k) slates (torch or NumPy) and normalise what comes back."""
    slates = torch.as_tensor(slates)
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


def rollout(
    policy: Policy,
    env,
    *,
    seed: int,
    explore: bool = False,
    learn: bool = False,
    rng: np.random.Generator | None = None,
    max_steps: int | None = None,
    until: Callable[[], bool] | None = None,
    hooks: Sequence[StepHook] = (),
) -> RolloutStats:
    """Reset `env` from `seed`, then repeat: slates = policy.act(obs, explore), step the simulator, (when `learn`)
    policy.observe(step) and step.update_stats = policy.update(), then every hook in order.

    Stops after `max_steps` steps (None: no limit) or as soon as `until()` is true after a step's hooks.
    `rng` is handed to `policy.act` only when given (policies that sample with NumPy, e.g. the slate policies
    off-policy evaluation logs with); the agents draw from their own generators.
    """
    if max_steps is None and until is None:
        raise ValueError("rollout needs max_steps or until, or it never stops")
    if max_steps is not None and max_steps < 0:
        raise ValueError(f"max_steps must be >= 0, got {max_steps}")
    obs = reset_env(env, seed)
    steps, policy_seconds = 0, 0.0
    while max_steps is None or steps < max_steps:
        start = time.perf_counter()
        slates = policy.act(obs, explore=explore) if rng is None else policy.act(obs, explore=explore, rng=rng)
        step = step_env(env, obs, slates)
        if learn:
            policy.observe(step)
            step.update_stats = policy.update()
        policy_seconds += time.perf_counter() - start
        for hook in hooks:
            hook(step)
        steps += 1
        obs = step.reset_obs
        if until is not None and until():
            break
    return RolloutStats(steps, policy_seconds)
