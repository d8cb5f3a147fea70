"""Estimate how a new policy would do from logs of the old one (off-policy evaluation), with intervals.

    python examples/evaluate_logs.py                                   # simulated logs whose truth is known
    python examples/evaluate_logs.py --logs logs.csv --target target.csv

logs.csv has one row per logged impression: ``item`` (what the old policy showed), ``reward`` (the click, 0/1)
and ``pscore`` (the old policy's probability of showing that item). target.csv gives the new policy's probability of
each item: ``item,probability``. Every estimator answers the same question, the new policy's click rate, with a
bootstrap interval (DM's is narrow: the bootstrap holds its reward model fixed); ``recengine ope`` does this on
the Open Bandit Dataset, with per-user context.
"""

from __future__ import annotations

import argparse
import csv

import numpy as np

from recengine.eval.ope_estimators import (
    DirectMethod,
    DoublyRobust,
    InverseProbabilityWeighting,
    SelfNormalizedIPW,
)


def simulated_logs(n: int, items: int, seed: int = 0):
    """Logs of a uniform random policy over `items`, the click rates, and a new policy that favours the items
    whose click rate is high (its true value is known here, unlike in real logs)."""
    rng = np.random.default_rng(seed)
    click_rate = rng.uniform(0.01, 0.2, items)
    item = rng.integers(0, items, n)
    reward = (rng.random(n) < click_rate[item]).astype(np.float64)
    pscore = np.full(n, 1.0 / items)
    target = np.exp(10 * click_rate)
    target /= target.sum()
    return item, reward, pscore, target, float(target @ click_rate)


def read_logs(logs: str, target: str):
    """(item, reward, pscore, target probabilities) from the two CSV files (module docstring)."""
    with open(target, newline="") as f:
        rows = list(csv.DictReader(f))
    ids = [r["item"] for r in rows]
    index = {raw: i for i, raw in enumerate(ids)}
    probability = np.array([float(r["probability"]) for r in rows])
    with open(logs, newline="") as f:
        rows = list(csv.DictReader(f))
    item = np.array([index[r["item"]] for r in rows])
    reward = np.array([float(r["reward"]) for r in rows])
    pscore = np.array([float(r["pscore"]) for r in rows])
    return item, reward, pscore, probability / probability.sum()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--logs", help="logged impressions: item, reward, pscore (default: simulated)")
    p.add_argument("--target", help="the new policy: item, probability")
    p.add_argument("--rounds", type=int, default=20_000, help="rounds of the simulated logs")
    p.add_argument("--bootstrap", type=int, default=500, help="bootstrap resamples per interval")
    args = p.parse_args(argv)
    if args.logs:
        item, reward, pscore, target = read_logs(args.logs, args.target)
        truth = None
    else:
        item, reward, pscore, target, truth = simulated_logs(args.rounds, items=30)
    n, items = len(item), len(target)
    action_dist = np.broadcast_to(target[None, :, None], (n, items, 1))  # the same distribution every round
    shown = np.bincount(item, minlength=items)
    clicks = np.bincount(item, weights=reward, minlength=items)
    q_hat = clicks / np.maximum(shown, 1)  # a reward model: each item's logged click rate (for DM and DR)
    estimated = np.broadcast_to(q_hat[None, :, None], (n, items, 1))

    print(f"{n} logged rounds, {items} items; logged click rate {reward.mean():.4f}")
    if truth is not None:
        print(f"the new policy's true click rate (known in simulation): {truth:.4f}")
    estimators = {
        "DM": DirectMethod(),
        "IPS": InverseProbabilityWeighting(),
        "SNIPS": SelfNormalizedIPW(),
        "DR": DoublyRobust(),
    }
    for name, estimator in estimators.items():
        iv = estimator.estimate_interval(
            reward=reward,
            action=item,
            pscore=pscore,
            action_dist=action_dist,
            estimated_rewards_by_reg_model=estimated,
            n_bootstrap_samples=args.bootstrap,
            random_state=0,
        )
        print(f"{name:6s} {iv.estimate:.4f}  95% interval [{iv.lower:.4f}, {iv.upper:.4f}]")


if __name__ == "__main__":
    main()
