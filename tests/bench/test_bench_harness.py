"""The benchmark harness: timing, ratios, bounds, table, JSON, plot — on tiny synthetic cases."""

import json

import torch

from recengine import bench


def _workload():
    a = torch.randn(256, 256)

    def build():
        return {
            "recengine": bench.Case(fn=lambda: a @ a, flops=2 * 256**3, measure_memory=True),
            "reference: twice": bench.Case(fn=lambda: (a @ a, a @ a), flops=2 * 256**3, bytes=3 * 256 * 256 * 4),
        }

    return bench.Workload("tiny matmul", ("recengine", "reference: twice", "peer: absent"), build)


def test_run_workload_reports_ratio_bound_and_memory(tmp_path):
    machine = bench.Machine("cpu", "test", 1, torch.__version__, copy_gbps=10.0, gemm_gflops=100.0)
    results = bench.run_workload(_workload(), "cpu", machine, repeat=3)
    by = {r.provider: r for r in results}
    assert set(by) == {"recengine", "reference: twice"}  # the absent peer is left out, not faked
    assert by["recengine"].recengine_speedup == 1.0
    ref = by["reference: twice"]
    assert ref.recengine_speedup == ref.median_s / by["recengine"].median_s
    assert ref.gbps == ref.bytes / ref.median_s / 1e9
    assert ref.pct_of_bound == 100.0 * ref.gflops / machine.gemm_gflops  # FLOPs set: compute bound wins
    assert by["recengine"].peak_extra_mib is not None and by["recengine"].peak_extra_mib >= 0
    assert by["reference: twice"].peak_extra_mib is None

    table = bench.format_table(results, machine)
    assert "tiny matmul" in table and "reference: twice" in table
    bench.write_json(str(tmp_path / "r.json"), results, machine)
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["machine"]["gemm_gflops"] == 100.0 and len(data["results"]) == 2
    bench.plot(str(tmp_path / "r.png"), results)
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"


def test_peak_extra_bytes_sees_a_large_temporary():
    peak = bench.peak_extra_bytes(lambda: torch.ones(64 * 2**20 // 4).sum(), "cpu")  # 64 MiB temporary
    assert peak is None or peak >= 32 * 2**20


def test_measure_machine_gives_positive_bounds():
    m = bench.measure_machine("cpu")
    assert m.copy_gbps > 0 and m.gemm_gflops > 0 and m.threads >= 1
