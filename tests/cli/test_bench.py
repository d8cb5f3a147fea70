"""`recengine bench --quick`: every family's workloads run through the CLI, with a table, JSON and a plot."""

import importlib
import json

from recengine.cli import main
from recengine.cli.bench import BENCH_FAMILIES


def test_bench_quick_all_families(tmp_path, capsys):
    out_json, out_png = tmp_path / "bench.json", tmp_path / "bench.png"
    rc = main(["bench", "--quick", "--repeat", "2", "--out", str(tmp_path), "--plot"])
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
    assert sorted(data["files"]) == sorted(p.name for p in tmp_path.iterdir()) == ["bench.json", "bench.png"]


def test_bench_rejects_unknown_family(tmp_path, capsys):
    assert main(["bench", "nope", "--quick", "--out", str(tmp_path / "o")]) == 2
    assert "unknown benchmark family 'nope'" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_bench_serving_needs_a_checkpoint(tmp_path, capsys):
    assert main(["bench", "serving", "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err == (
        "recengine bench: error: --checkpoint: 'bench serving' needs a trained model (a `recengine train` output dir)\n"
    )


def test_results_go_to_bench_json_in_the_out_directory():
    import argparse

    from recengine.cli.bench import json_path, plot_path

    args = argparse.Namespace(out="runs/b", plot=False)
    assert (json_path(args), plot_path(args)) == ("runs/b/bench.json", None)
    assert plot_path(argparse.Namespace(out="runs/b", plot=True)) == "runs/b/bench.png"


def test_bench_train_quick_writes_its_table_and_json(tmp_path, capsys):
    import json

    from recengine.cli import main

    path = tmp_path / "bench.json"
    assert main(["bench", "train", "--quick", "--out", str(tmp_path), "--overwrite", "--plot"]) == 0
    out = capsys.readouterr().out
    assert "catalog loss %" in out and "synthetic 10k items" in out
    results = json.loads(path.read_text())["results"]
    assert [r["name"] for r in results] == ["ml-100k", "synthetic 1k items", "synthetic 10k items"]
    assert all(r["tokens_timed"] >= 6000 for r in results) and (tmp_path / "bench.png").stat().st_size > 0
