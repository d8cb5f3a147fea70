"""The comparison's "Simulator validation": is the simulator that judges the agents fit to judge them?

Runs ``recengine.judging.simulator_validation`` on the comparison's own simulator, split and policies: the user
model's held-out accuracy beside the large model's, and the simulated return of random, popularity, MF/BPR and the
large model beside their real offline NDCG@10 (Kendall's tau, the paired interval large model − popularity, the
already-consumed share of each policy's slates).
"""

from __future__ import annotations

from collections.abc import Callable

from recengine.agents.entry import CompareSetup
from recengine.eval.metrics import HR_AT_10, NDCG_AT_10

VALIDATION_POLICIES = ("random", "popularity", "mf-bpr", "large-model")
"""the known policies whose simulated ordering is checked against the offline one (those the run has)"""


def offline_ndcg(setup: CompareSetup, name: str, agents: dict) -> float | None:
    """Real held-out test NDCG@10 of policy `name`: computed for random and popularity, the agent's own
    leave-one-out figure otherwise."""
    from recengine.eval.offline import evaluate_pop
    from recengine.judging.simulator_validation import random_ranking_ndcg

    if name == "random":
        return random_ranking_ndcg(setup.split)
    if name == "popularity":
        return evaluate_pop(setup.split, "test")[NDCG_AT_10]
    return agents.get(name, {}).get(NDCG_AT_10)


def validate_simulator(
    setup: CompareSetup, policies: dict, agents: dict, large_model: dict | None, log: Callable[..., None] = print
) -> dict | None:
    """The ``simulator_validation`` result for the run's policies (training seed 0's), or None when fewer than
    two of VALIDATION_POLICIES ran."""
    from recengine.judging.simulator_validation import simulator_validation

    cfg = setup.settings
    names = [n for n in VALIDATION_POLICIES if n in policies]
    offline = {n: offline_ndcg(setup, n, agents) for n in names}
    names = [n for n in names if offline[n] is not None]
    if len(names) < 2:
        return None
    v = simulator_validation(
        setup.simulator,
        setup.split,
        policies={n: policies[n] for n in names},
        offline_ndcg={n: offline[n] for n in names},
        large_model=large_model,
        num_sessions=cfg.validation_sessions,
        seed=cfg.seed + 2024,
        level=cfg.ci_level,
    )
    um = v["user_model"]["test"]
    log(
        f"simulator validation: user model test ndcg@10 {um[NDCG_AT_10]:.4f} hr@10 {um[HR_AT_10]:.4f}, "
        f"Kendall tau {v['kendall_tau']:.2f}, checks met {sum(bool(x) for x in v['checks'].values())}"
        f"/{len(v['checks'])}"
    )
    return v
