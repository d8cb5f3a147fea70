"""Off-policy evaluation workloads: W5 = every estimator on 10^6 logged rounds x 80 actions x 3 positions
(the Open Bandit Dataset's shape at full scale), the evaluation policy's action distribution and the reward
model's predictions given as obp-style (n, 80, 3) float64 arrays.

recengine checks and reduces the two big arrays in one pass (``prepare_rounds``) and runs DM, IPS, SNIPS, DR,
SNDR, Switch-DR and DRos on the per-round values; the reference is the plain NumPy of
``recengine.reference.ope``, one obp-style function per estimator, each slicing the big arrays itself. The
useful bytes are the two arrays read once. The estimators run on the host whatever the device.
"""

from __future__ import annotations

import numpy as np

from recengine.bench import RECENGINE, Case, Workload

W5_REFERENCE = "reference: plain NumPy, obp-style per estimator"
#: distinct (n_actions, len_list) blocks the inputs are drawn from (building 2 x 1.9 GB of fresh randoms is slow)
_POOL = 256


def _shape(quick: bool) -> tuple[int, int, int]:
    return (20_000, 80, 3) if quick else (1_000_000, 80, 3)


def _inputs(n: int, n_actions: int, len_list: int) -> dict:
    rng = np.random.default_rng(0)
    pool = rng.random((_POOL, n_actions, len_list)) ** 4
    pool /= pool.sum(axis=1, keepdims=True)
    models = rng.random((_POOL, n_actions, len_list)) * 0.1
    return dict(
        reward=(rng.random(n) < 0.05).astype(np.float64),
        action=rng.integers(0, n_actions, n),
        position=rng.integers(0, len_list, n),
        pscore=np.full(n, 1.0 / n_actions),
        action_dist=pool[rng.integers(0, _POOL, n)],
        estimated_rewards_by_reg_model=models[rng.integers(0, _POOL, n)],
    )


def workloads(device: str, quick: bool = False) -> list[Workload]:
    from recengine.eval.ope_estimators import ESTIMATORS
    from recengine.eval.ope_inputs import prepare_rounds
    from recengine.reference.ope import reference_estimate

    n, n_actions, len_list = _shape(quick)
    name = "W5" if not quick else "W5-quick"
    nbytes = 2.0 * n * n_actions * len_list * 8

    def all_estimators():
        logs = _inputs(n, n_actions, len_list)

        def ours():
            rounds = prepare_rounds(**logs)
            return {k: cls().estimate_policy_value(rounds=rounds) for k, cls in ESTIMATORS.items()}

        def reference():
            args = [
                logs[k]
                for k in ("reward", "action", "position", "pscore", "action_dist", "estimated_rewards_by_reg_model")
            ]
            return {k: reference_estimate(k, *args) for k in ESTIMATORS}

        return {RECENGINE: Case(ours, bytes=nbytes, items=n), W5_REFERENCE: Case(reference, bytes=nbytes, items=n)}

    return [
        Workload(
            f"{name} OPE: 7 estimators, {n} rounds x {n_actions} actions x {len_list} positions",
            (RECENGINE, W5_REFERENCE),
            all_estimators,
            note="host NumPy/numba; items = logged rounds",
        )
    ]
