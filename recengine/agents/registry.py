"""The agent registry: every agent the comparison runs, declared once, by name.

An agent is an `AgentEntry`: how it is built from what the comparison prepared (a `CompareSetup`) and a
training seed. Training and evaluation are the same for every agent: one that `learns` is trained in the
feedback loop (`recengine.agents.loop.train`) for `setup.settings.rl_steps[name]` steps (none when absent),
then every agent is evaluated greedily on the simulator (`loop.evaluate`), and one built with an `offline`
model is also scored on the data's leave-one-out test split.

A new agent is one file in `recengine/agents/entries/` defining ``ENTRY = AgentEntry(...)`` and one line in
`recengine/agents/entries/__init__.py`; `register` adds one at run time (tests, plug-ins).
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


_RUNTIME: dict[str, AgentEntry] = {}


def register(entry: AgentEntry) -> AgentEntry:
    """Add `entry` to the registry (replacing a run-time entry of the same name); returns it."""
    if entry.name in _builtin():
        raise ValueError(f"entry: {entry.name!r} is a built-in agent; choose another name")
    _RUNTIME[entry.name] = entry
    return entry


def unregister(name: str) -> None:
    """Remove a run-time entry (built-in agents stay)."""
    _RUNTIME.pop(name, None)


def registered() -> dict[str, AgentEntry]:
    """Every agent by name: the built-in ones in report order, then those registered at run time."""
    return {**_builtin(), **_RUNTIME}


def lookup(name: str) -> AgentEntry:
    """The entry of agent `name`; ValueError listing the known names when there is none."""
    agents = registered()
    if name not in agents:
        raise ValueError(f"agents: unknown agent {name!r}; known: {', '.join(agents)}")
    return agents[name]


def _builtin() -> dict[str, AgentEntry]:
    from recengine.agents.entries import ENTRIES

    return {entry.name: entry for entry in ENTRIES}
