"""What an agent of the comparison is: the types the registry and every agent entry share.

An `AgentEntry` builds a `BuiltAgent` from what the comparison prepared (a `CompareSetup`) and a training seed.
The registry (`recengine.agents.registry`) lists entries by name; each built-in entry
(`recengine.agents.entries`) defines one. Both import these types from here, so neither imports the other's
module back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from recengine.agents.policy_base import Policy


@dataclass
class CompareSetup:
    """What every agent of one comparison is built from."""

    data: Any
    """the dataset (recengine.data.MovieLens or the synthetic one)"""
    split: Any
    """its leave-one-out split (recengine.data.LeaveOneOut)"""
    simulator: Any
    """the user model fitted to the data's train split (recengine.env.SequentialUserModel)"""
    settings: Any
    """the comparison's settings (recengine.report.compare.CompareConfig)"""
    pretrained: Any
    """the supervised large model (recengine.nn.SequenceRecommender), or None when no agent needs it"""
    sasrec: Any
    """the large model's settings (recengine.train.SASRecConfig): fresh encoders share its architecture"""

    @property
    def num_items(self) -> int:
        return self.simulator.num_items

    @property
    def slate_size(self) -> int:
        return self.settings.slate_size

    @property
    def item_counts(self) -> np.ndarray:
        """(N,) interactions per item in the training prefixes of the split (what the popularity baseline ranks
        by): no held-out validation or test event counts."""
        from recengine.eval.offline import train_item_counts

        return train_item_counts(self.split)


@dataclass
class BuiltAgent:
    """An agent as built, before any training in the feedback loop (an offline model is already fitted)."""

    policy: Policy
    """what acts in the simulator (and learns there when policy.learns)"""
    offline: Callable[[], dict[str, float]] | None = None
    """its leave-one-out test metrics {"hr@10", "ndcg@10"}, read after training (None: not measured)"""


@dataclass(frozen=True)
class AgentEntry:
    """One agent of the comparison."""

    name: str
    """its name in the report and on the command line"""
    build: Callable[[CompareSetup, int], BuiltAgent]
    """(setup, training seed) -> the agent, ready for the feedback loop"""
    needs_pretrained: bool = False
    """it starts from the supervised large model (the comparison pre-trains it once when any agent asks)"""
