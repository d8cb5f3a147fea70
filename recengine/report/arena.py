"""Where agents meet simulated users: the training, learning-curve and evaluation environments, and the run of one
agent in them (build, train in the feedback loop when it learns, evaluate greedily).

The evaluation environment may be another simulator than the training one: agents trained in a simulator fitted
on one half of the users are judged in one fitted on the other half (recengine.report.robustness).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from recengine.agents.config import LoopConfig
from recengine.agents.entry import AgentEntry, CompareSetup
from recengine.eval.metrics import HR_AT_10, NDCG_AT_10
from recengine.eval.stats import mean_ci
from recengine.report import beyond_accuracy

Log = Callable[..., None]


@dataclass
class Arena:
    """The simulated users every agent meets: training, learning-curve and final-evaluation batches."""

    train: object
    curve: object
    evaluation: object
    item_vectors: torch.Tensor
    """the simulator's item vectors (slate diversity): its response model's item table"""

    @classmethod
    def of(cls, setup: CompareSetup, evaluation_simulator=None, eval_sessions: int | None = None) -> Arena:
        """Training and learning curves in setup.simulator; the final evaluation in `evaluation_simulator`
        (default the same) over `eval_sessions` sessions (default the settings')."""
        from recengine.env import vector_env

        sim, cfg = setup.simulator, setup.settings
        judge = evaluation_simulator if evaluation_simulator is not None else sim
        return cls(
            vector_env(sim, cfg.num_envs),
            vector_env(sim, cfg.curve_sessions),
            vector_env(judge, eval_sessions or cfg.eval_sessions),
            item_vectors(sim),
        )


def item_vectors(sim) -> torch.Tensor:
    """(N, D) the item vectors slate diversity is measured with: the response model's item table (the sequence-
    aware simulator) or the item factors (the matrix-factorisation one)."""
    if hasattr(sim, "response"):
        return sim.response.item_table().detach().float()
    return torch.as_tensor(sim.item_factors, dtype=torch.float32)


def run_agent(
    entry: AgentEntry, setup: CompareSetup, arena: Arena, seed_index: int, log: Log, offline: bool = True
) -> tuple[dict, object]:
    """Build, train (when it learns) and evaluate one agent for training seed `seed_index`; (its row, its policy).
    `offline`: also score its model on the leave-one-out test split (when it has one).

    Every agent of a seed is evaluated on the same sessions (eval seed cfg.seed + 999 + 1000 · seed_index)."""
    from recengine.agents.loop import evaluate, train

    cfg = setup.settings
    seed = cfg.seed + seed_index
    t = time.perf_counter()
    built = entry.build(setup, seed)
    row = {
        "updates_per_s": None,
        "updates": 0,
        "train_seconds": None,
        HR_AT_10: None,
        NDCG_AT_10: None,
        "curve": [],
        "curve_gain": None,
    }
    if getattr(built.policy, "learns", False):
        loop_cfg = LoopConfig(
            num_envs=cfg.num_envs,
            total_steps=cfg.rl_steps.get(entry.name, 0),
            slate_size=cfg.slate_size,
            eval_every=cfg.eval_every,
            eval_sessions=cfg.curve_sessions,
            seed=seed,
            progress=cfg.progress,
        )
        run = train(
            built.policy,
            arena.train,
            loop_cfg,
            eval_env=arena.curve,
            item_vectors=arena.item_vectors,
            desc=f"{entry.name} (seed {seed})",
            eval_seed=12345 + 1000 * seed_index,
        )
        row.update({key: run[key] for key in ("updates_per_s", "updates", "train_seconds", "curve", "curve_gain")})
    slates = beyond_accuracy.GreedySlates(arena.evaluation.num_envs)  # beyond-accuracy: the evaluation's slates
    metrics = evaluate(
        built.policy,
        arena.evaluation,
        seed=cfg.seed + 999 + 1000 * seed_index,
        item_vectors=arena.item_vectors,
        on_step=slates,
    )
    row.update(
        {
            key: metrics[key]
            for key in ("avg_return", "ctr", "coverage", "diversity", "avg_session_length", "session_returns")
        }
    )
    # beyond-accuracy metrics (coverage and diversity of the row come from there: one definition of each)
    measured = beyond_accuracy.measure_agent(
        built.policy, setup, arena.item_vectors, slates, offline=offline, seed=cfg.seed + seed_index
    )
    row.update(beyond_accuracy.row_fields(measured))
    if offline and built.offline is not None:
        row.update(built.offline())
    row["wall_seconds"] = time.perf_counter() - t
    ci = mean_ci(row["session_returns"], cfg.ci_level)
    log(
        f"{entry.name:18s} seed {seed}: return/session {ci['mean']:.3f} ± {ci['ci_high'] - ci['mean']:.3f}  "
        f"ctr {row['ctr']:.3f}  coverage {row['coverage']:.3f}  ({row['wall_seconds']:.0f}s)"
    )
    return row, built.policy
