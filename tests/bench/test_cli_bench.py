"""`recengine bench --quick`: every family's workloads run through the CLI, with a table, JSON and a plot."""

import importlib
import json

from recengine.cli import BENCH_FAMILIES, main


def test_bench_quick_all_families(tmp_path, capsys):
    out_json, out_png = tmp_path / "bench.json", tmp_path / "bench.png"
    rc = main(["bench", "--quick", "--repeat", "2", "--json", str(out_json), "--plot", str(out_png)])
    assert rc == 0
    table = capsys.readouterr().out
    assert "recengine x" in table and "copy bandwidth" in table
    data = json.loads(out_json.read_text())
    assert data["machine"]["copy_gbps"] > 0 and data["machine"]["gemm_gflops"] > 0
    by_workload: dict[str, dict] = {}
    for r in data["results"]:
        by_workload.setdefault(r["workload"], {})[r["provider"]] = r
    family_of = {
        w.name: family
        for family, module in BENCH_FAMILIES.items()
        for w in importlib.import_module(module).workloads("cpu", quick=True)
    }
    assert {family_of[w] for w in by_workload} == set(BENCH_FAMILIES)
    for name, rows in by_workload.items():
        if "recengine" not in rows:  # a bound-only row (the bare matmul) has no recengine entry
            assert all(p.startswith("peer:") for p in rows), name
            continue
        refs = [p for p in rows if p.startswith("reference:")]
        assert refs, f"{name}: no reference measured in the same run"
        ours = rows["recengine"]["median_s"]
        for p in refs:
            assert abs(rows[p]["recengine_speedup"] - rows[p]["median_s"] / ours) < 1e-9
        assert rows["recengine"]["pct_of_bound"] is not None or rows["recengine"]["items_per_s"] is not None, name
    assert out_png.read_bytes()[:4] == b"\x89PNG"


def test_bench_rejects_unknown_family(capsys):
    assert main(["bench", "nope", "--quick"]) == 2
    assert "unknown benchmark family" in capsys.readouterr().err
