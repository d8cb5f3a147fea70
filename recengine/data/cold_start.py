"""The cold-start split: a seeded share of the items is hidden from every training interaction.

    split = cold_start_split(data, share=0.1, seed=0)
    split.train        # LeaveOneOut of the histories WITHOUT the cold items' events: training and validation
    split.test         # LeaveOneOut of the full histories: its test targets are what is evaluated
    split.cold_target  # (U,) bool, the user's test target is a cold item
    split.cold_events  # (users, ends): every event on a cold item, and where its prefix ends

Training windows and validation come from ``train`` only, so no cold item occurs in any training input or target.
Two kinds of events are evaluated, each ranked over the whole catalog from the user's full history before it
(cold items included), that history's items excluded:

- warm: the full histories' last events whose item is warm (the usual leave-one-out test targets). A warm test
  target is also the warm-only history's test target, so it is never trained on either.
- cold: every event on a cold item with at least one event before it. None of them is trained on (the item never
  occurs in training), so all are test events; the last events alone would give about one cold event per ten
  users, too few to tell two feature sets apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recengine.data.sequences import LeaveOneOut, build_histories, histories_of, leave_one_out
from recengine.padding import PAD_ID

DEFAULT_COLD_SHARE = 0.1
"""the share of the items hidden from training"""


@dataclass(frozen=True)
class ColdStartSplit:
    """Cold items, the warm-only split used for training and validation, and the full split used for testing."""

    cold_items: np.ndarray
    """sorted item ids with no training event"""
    train: LeaveOneOut
    test: LeaveOneOut
    cold_target: np.ndarray
    """(U,) bool: user u's test target (in ``test``) is cold"""

    @property
    def eval_users(self) -> np.ndarray:
        """Users with a test target in the full histories."""
        return self.test.eval_users

    @property
    def cold_events(self) -> tuple[np.ndarray, np.ndarray]:
        """(users, ends), int64: every event on a cold item that has an event before it in the user's full
        history, by user then time; the event is ``test.histories.items[end]`` and its prefix
        ``items[offsets[user]:end]``."""
        h = self.test.histories
        is_cold = np.zeros(h.num_items, dtype=bool)
        is_cold[self.cold_items] = True
        user_of = np.repeat(np.arange(h.num_users, dtype=np.int64), np.diff(h.offsets))
        at = np.flatnonzero(is_cold[h.items] & (np.arange(h.items.size) > h.offsets[user_of]))
        return user_of[at], at.astype(np.int64)


def choose_cold_items(item: np.ndarray, num_items: int, share: float, seed: int) -> np.ndarray:
    """round(share * number of items with an event) items, drawn uniformly among those with at least one event
    in `item` (a seeded numpy Generator), sorted."""
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0.0 < share < 1.0:
        raise ValueError(f"share: expected a number in (0, 1), got {share!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed: expected an int >= 0, got {seed!r}")
    present = np.flatnonzero(np.bincount(np.asarray(item, dtype=np.int64), minlength=num_items) > 0)
    count = int(round(share * present.size))
    if count < 1 or count >= present.size:
        raise ValueError(f"share: {share} of {present.size} items leaves no cold or no warm item")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(present, size=count, replace=False)).astype(np.int64)


def cold_start_split(data, share: float = DEFAULT_COLD_SHARE, seed: int = 0) -> ColdStartSplit:
    """Hide `share` of the items (seeded) from training (see the module doc)."""
    cold = choose_cold_items(data.item, data.num_items, share, seed)
    is_cold = np.zeros(data.num_items, dtype=bool)
    is_cold[cold] = True
    warm_events = ~is_cold[np.asarray(data.item, dtype=np.int64)]
    warm = build_histories(
        data.user[warm_events], data.item[warm_events], data.timestamp[warm_events], data.num_users, data.num_items
    )
    test = leave_one_out(histories_of(data))
    target = test.test_target
    cold_target = (target != PAD_ID) & is_cold[np.where(target == PAD_ID, 0, target)]
    return ColdStartSplit(cold, leave_one_out(warm), test, cold_target)
