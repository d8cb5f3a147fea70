"""A tiny Open Bandit Dataset in obp's layout (4 items, 3 positions, 90 rounds per policy), for tests that must
not depend on the network: ``write_tiny_obd(root)`` writes random/ and bts/ logs of campaign "all", their
item_context.csv and a prior_bts.yaml."""

from __future__ import annotations

import os

import numpy as np

N_ITEMS, LEN_LIST, N_ROUNDS = 4, 3, 90
USER_CATEGORIES = (("aa", "bb", "cc"), ("x1", "y2"))
PRIOR_ALPHA = (3.0, 1.0, 2.0, 5.0)
PRIOR_BETA = (40.0, 30.0, 60.0, 50.0)


def _log_csv(seed: int, pscore_of) -> str:
    rng = np.random.default_rng(seed)
    header = ",timestamp,item_id,position,click,propensity_score,user_feature_0,user_feature_1," + ",".join(
        f"user-item_affinity_{j}" for j in range(N_ITEMS)
    )
    lines = [header]
    order = rng.permutation(N_ROUNDS)  # rows out of time order: the loader sorts them
    for k, i in enumerate(order):
        item, pos = int(rng.integers(N_ITEMS)), int(rng.integers(1, LEN_LIST + 1))
        click = int(rng.random() < 0.2)
        users = [USER_CATEGORIES[c][int(rng.integers(len(USER_CATEGORIES[c])))] for c in range(2)]
        affinity = ",".join("0.0" for _ in range(N_ITEMS))
        lines.append(
            f"{k},2019-11-24 00:{i // 60:02d}:{i % 60:02d}.000000+00:00,{item},{pos},{click},"
            f"{pscore_of(item, pos)},{users[0]},{users[1]},{affinity}"
        )
    return "\n".join(lines) + "\n"


def item_context_csv() -> str:
    rows = [",item_id,item_feature_0,item_feature_1,item_feature_2"]
    for j in range(N_ITEMS):
        rows.append(f"{j},{j},{0.1 * j - 0.2},{'cat' if j % 2 else 'dog'},{'z' if j < 2 else 'a'}")
    return "\n".join(rows) + "\n"


def random_log_csv(seed: int = 0) -> str:
    return _log_csv(seed, lambda item, pos: 1.0 / N_ITEMS)


def prior_yaml() -> str:
    lines = ["all:", "  alpha:", *(f"    - {a}" for a in PRIOR_ALPHA), "  beta:", *(f"    - {b}" for b in PRIOR_BETA)]
    return "\n".join(lines) + "\n"


def write_tiny_obd(root: str) -> str:
    """Write the fixture under ``root`` and return it."""
    for behavior, seed, pscore_of in (
        ("random", 0, lambda item, pos: 1.0 / N_ITEMS),
        ("bts", 1, lambda item, pos: 0.1 + 0.2 * item),
    ):
        d = os.path.join(root, behavior, "all")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "all.csv"), "w") as f:
            f.write(_log_csv(seed, pscore_of))
        with open(os.path.join(d, "item_context.csv"), "w") as f:
            f.write(item_context_csv())
    with open(os.path.join(root, "prior_bts.yaml"), "w") as f:
        f.write(prior_yaml())
    return root
