"""recengine.agents: the agents, their one policy interface and rollout loop, and the registry the comparison reads
(`registry`; the types an entry is made of in `entry`, the built-in entries in `entries/`).

`save_agent` / `load_agent` (recengine.agents.persistence) load lazily (PEP 562), so importing the package stays
cheap."""

from __future__ import annotations

import importlib

__all__ = ["save_agent", "load_agent"]


def __getattr__(name: str):
    """`save_agent` and `load_agent` from recengine.agents.persistence, on first use."""
    if name in __all__:
        return getattr(importlib.import_module("recengine.agents.persistence"), name)
    raise AttributeError(f"module 'recengine.agents' has no attribute {name!r}")
