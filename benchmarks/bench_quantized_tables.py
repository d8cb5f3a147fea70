"""pytest-benchmark over the quantized_tables family's standard workloads (the catalog top-k over int8 tables).

    python -m pytest benchmarks/bench_quantized_tables.py --benchmark-only          # full size
    RECENGINE_BENCH_QUICK=1 python -m pytest benchmarks/bench_quantized_tables.py   # small smoke run

The same workloads back `recengine bench quantized_tables`, which also prints speedups, % of the GEMM rate and
peak extra memory.
"""

import os

import pytest
import torch

from recengine import bench
from recengine.bench import quantized_tables as quantized_tables_bench

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
WORKLOADS = quantized_tables_bench.workloads(DEVICE, quick=os.environ.get("RECENGINE_BENCH_QUICK") == "1")


@pytest.mark.parametrize("workload,provider", bench.pytest_params(WORKLOADS))
def test_quantized_tables(benchmark, workload, provider):
    case = bench.get_case(workload, provider)
    benchmark.extra_info.update(flops=case.flops, workload=workload.name, provider=provider)

    def run():
        if case.setup:
            case.setup()
        return case.fn()

    benchmark.pedantic(run, rounds=3, warmup_rounds=1)
