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

from recengine.agents.entry import AgentEntry

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
