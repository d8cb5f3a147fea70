"""pytest-benchmark over the embedding_bag family's standard workloads (W1: 8 x 1M x 64, batch 4096, 20 ids/bag).

    python -m pytest benchmarks/bench_embedding_bag.py --benchmark-only            # full size (~8 GiB of tables)
    RECENGINE_BENCH_QUICK=1 python -m pytest benchmarks/bench_embedding_bag.py     # small smoke run

The same workloads back `recengine bench embedding_bag`, which also prints speedups and GB/s against the
machine's copy bandwidth. FBGEMM (`pip install --no-deps fbgemm-gpu-cpu==1.8.0`) is an optional peer.
"""

import os

import pytest
import torch

from recengine import bench
from recengine.bench import embedding_bag as embedding_bag_bench

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
WORKLOADS = embedding_bag_bench.workloads(DEVICE, quick=os.environ.get("RECENGINE_BENCH_QUICK") == "1")


@pytest.mark.parametrize("workload,provider", bench.pytest_params(WORKLOADS))
def test_embedding_bag(benchmark, workload, provider):
    case = bench.get_case(workload, provider)
    benchmark.extra_info.update(bytes=case.bytes, workload=workload.name, provider=provider)

    def run():
        if case.setup:
            case.setup()
        return case.fn()

    benchmark.pedantic(run, rounds=5, warmup_rounds=1)
