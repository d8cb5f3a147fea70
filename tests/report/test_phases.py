"""PhaseClock: phases timed in wall and CPU seconds, repeated phases accumulated, in first-run order."""

import pytest

from recengine.report.phases import PhaseClock


def _spin(n: int = 200_000) -> int:
    return sum(i * i for i in range(n))


def test_phases_in_first_run_order_and_accumulated():
    clock = PhaseClock()
    with clock("b"):
        _spin()
    with clock("a"):
        _spin()
    once = clock.table()["b"]["cpu_s"]
    with clock("b"):
        _spin()
    table = clock.table()
    assert list(table) == ["b", "a"]
    assert table["b"]["cpu_s"] >= once
    assert all(set(p) == {"wall_s", "cpu_s"} for p in table.values())


def test_a_failing_phase_is_still_timed():
    clock = PhaseClock()
    with pytest.raises(RuntimeError), clock("broken"):
        raise RuntimeError("boom")
    assert "broken" in clock.table()
    assert clock.elapsed() >= clock.table()["broken"]["wall_s"] - 0.05
