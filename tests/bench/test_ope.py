"""The W5 off-policy evaluation workload: both providers compute the same seven estimates."""

from __future__ import annotations

import pytest

from recengine.bench import RECENGINE
from recengine.bench import ope as ope_bench


def test_quick_workload_providers_agree():
    (workload,) = ope_bench.workloads("cpu", quick=True)
    cases = workload.build()
    assert set(cases) == set(workload.providers) == {RECENGINE, ope_bench.W5_REFERENCE}
    ours, ref = cases[RECENGINE].fn(), cases[ope_bench.W5_REFERENCE].fn()
    assert set(ours) == set(ref) == {"dm", "ips", "snips", "dr", "sndr", "switch-dr", "dros"}
    for name in ours:
        assert ours[name] == pytest.approx(ref[name], rel=1e-10), name
    assert cases[RECENGINE].items == 20_000
