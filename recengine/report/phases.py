"""PhaseClock: where a run's time goes, phase by phase, in wall-clock and CPU seconds.

Wall-clock time on a shared machine says as much about the neighbours as about the run; the process's CPU time
beside it tells the two apart (CPU seconds near wall seconds x threads: the run had the cores to itself).
"""

from __future__ import annotations

import time
from contextlib import contextmanager


class PhaseClock:
    """Times named phases: ``with clock("simulator fit"): ...``; ``clock.table()`` -> {phase: {wall_s, cpu_s}}.

    A phase entered twice (e.g. one per training seed) accumulates."""

    def __init__(self):
        self.start = time.perf_counter()
        self._phases: dict[str, dict[str, float]] = {}

    @contextmanager
    def __call__(self, name: str):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            entry = self._phases.setdefault(name, {"wall_s": 0.0, "cpu_s": 0.0})
            entry["wall_s"] += time.perf_counter() - wall
            entry["cpu_s"] += time.process_time() - cpu

    def elapsed(self) -> float:
        """Wall seconds since the clock was made."""
        return time.perf_counter() - self.start

    def table(self) -> dict[str, dict[str, float]]:
        """{phase: {"wall_s", "cpu_s"}} rounded to 0.1 s, in the order the phases first ran."""
        return {name: {k: round(v, 1) for k, v in entry.items()} for name, entry in self._phases.items()}
