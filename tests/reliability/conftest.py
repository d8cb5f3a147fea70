"""The soak test is opt-in: it is deselected unless the run selects markers itself (``-m soak``)."""

from __future__ import annotations


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "soak: a long run (minutes) of interleaved work with memory sampled; run with -m soak"
    )


def pytest_collection_modifyitems(config, items):
    if config.option.markexpr:
        return
    keep = [item for item in items if item.get_closest_marker("soak") is None]
    dropped = [item for item in items if item.get_closest_marker("soak") is not None]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
