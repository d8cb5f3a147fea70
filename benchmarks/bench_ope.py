"""pytest-benchmark over the off-policy evaluation workload (W5: every estimator, 10^6 rounds x 80 x 3).

    python -m pytest benchmarks/bench_ope.py --benchmark-only            # full size (~4 GB of inputs)
    RECENGINE_BENCH_QUICK=1 python -m pytest benchmarks/bench_ope.py     # small smoke run

The same workload backs `recengine bench ope`, which also prints the speedup and items/s.
"""

import os

import pytest

from recengine import bench
from recengine.bench import ope as ope_bench

WORKLOADS = ope_bench.workloads("cpu", quick=os.environ.get("RECENGINE_BENCH_QUICK") == "1")


@pytest.mark.parametrize("workload,provider", bench.pytest_params(WORKLOADS))
def test_ope(benchmark, workload, provider):
    case = bench.get_case(workload, provider)
    benchmark.extra_info.update(items=case.items, workload=workload.name, provider=provider)
    benchmark.pedantic(case.fn, rounds=5, warmup_rounds=1)
