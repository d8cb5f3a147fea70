"""pytest-benchmark over the replay family's standard workloads (W3 = prioritized replay, W4 = DQN step).

    python -m pytest benchmarks/bench_replay.py --benchmark-only            # full size (~2 GiB for W3)
    RECENGINE_BENCH_QUICK=1 python -m pytest benchmarks/bench_replay.py     # small smoke run

The same workloads back `recengine bench replay`, which also prints speedups, items/s and % of bound.
"""

import os

import pytest
import torch

from recengine import bench
from recengine.bench import replay as replay_bench

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
WORKLOADS = replay_bench.workloads(DEVICE, quick=os.environ.get("RECENGINE_BENCH_QUICK") == "1")


@pytest.mark.parametrize("workload,provider", bench.pytest_params(WORKLOADS))
def test_replay(benchmark, workload, provider):
    case = bench.get_case(workload, provider)
    benchmark.extra_info.update(items=case.items, flops=case.flops, workload=workload.name, provider=provider)

    def run():
        if case.setup:
            case.setup()
        return case.fn()

    benchmark.pedantic(run, rounds=5, warmup_rounds=1)
