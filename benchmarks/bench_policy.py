"""pytest-benchmark over the policy family's standard workloads (W2 = catalog scoring).

    python -m pytest benchmarks/bench_policy.py --benchmark-only            # full size (GiBs for the references)
    RECENGINE_BENCH_QUICK=1 python -m pytest benchmarks/bench_policy.py     # small smoke run

The same workloads back `recengine bench policy`, which also prints speedups, % of the GEMM rate and
peak extra memory.
"""

import os

import pytest
import torch

from recengine import bench
from recengine.bench import policy as policy_bench

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
WORKLOADS = policy_bench.workloads(DEVICE, quick=os.environ.get("RECENGINE_BENCH_QUICK") == "1")


@pytest.mark.parametrize("workload,provider", bench.pytest_params(WORKLOADS))
def test_policy(benchmark, workload, provider):
    case = bench.get_case(workload, provider)
    benchmark.extra_info.update(flops=case.flops, workload=workload.name, provider=provider)

    def run():
        if case.setup:
            case.setup()
        return case.fn()

    benchmark.pedantic(run, rounds=3, warmup_rounds=1)
