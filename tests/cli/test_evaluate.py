"""`recengine evaluate`: one model gives its training run's test figures, two give theirs and their ensemble's, and
a model of other data, a missing or foreign file are one line and exit code 2 before any data is read."""

from __future__ import annotations

import json

import pytest

from recengine.cli import main
from tests.data.local_fixture import write_log

TINY = ["--max-epochs", "1", "--dim", "8", "--max-len", "6", "--num-layers", "1", "--no-baselines", "--quiet"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two tiny models trained on one log (different widths and seeds), and the log."""
    root = tmp_path_factory.mktemp("evaluate")
    path = write_log(root, "parquet")
    out = []
    for name, extra in (("a", ["--seed", "0"]), ("b", ["--seed", "1", "--dim", "12"])):
        assert main(["train", "sasrec", "--dataset", str(path), "--out", str(root / name), *TINY, *extra]) == 0
        out.append(root / name)
    return path, out


def test_one_model_gives_the_figures_its_training_run_wrote(runs, tmp_path, capsys):
    path, (a, _) = runs
    assert main(["evaluate", "--dataset", str(path), "--model", str(a), "--out", str(tmp_path / "e"), "--quiet"]) == 0
    got = json.loads((tmp_path / "e" / "metrics.json").read_text())
    trained = json.loads((a / "metrics.json").read_text())
    assert got["models"][0]["test"]["ndcg@10"] == pytest.approx(trained["ndcg@10"])
    assert got["models"][0]["test_with_history"] == pytest.approx(trained["test_with_history"])
    assert got["split"]["sha256"] == trained["split"]["sha256"]
    assert "ensemble" not in got and got["files"] == ["metrics.json"]
    assert capsys.readouterr().out == f"wrote {tmp_path / 'e'}/metrics.json\n"


def test_two_models_give_each_one_and_their_ensemble(runs, tmp_path):
    path, (a, b) = runs
    argv = ["evaluate", "--dataset", str(path), "--model", str(a), "--model", str(b / "model.safetensors")]
    assert main([*argv, "--out", str(tmp_path / "e"), "--quiet"]) == 0
    got = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert [m["path"] for m in got["models"]] == [str(a), str(b / "model.safetensors")]
    for figures in (*got["models"], got["ensemble"]):
        assert set(figures) - {"path"} == {"valid", "test", "test_with_history"}
        assert 0.0 <= figures["test"]["ndcg@10"] <= figures["test"]["hr@10"] <= 1.0


def test_a_model_of_other_data_is_refused_naming_it(runs, tmp_path, capsys):
    _, (a, _) = runs
    other = tmp_path / "other.txt"  # another catalog: 3 users over 4 items
    other.write_text("".join(f"{u} {i}\n" for u in (1, 2, 3) for i in (1, 2, 3, 4)))
    code = main(["evaluate", "--dataset", str(other), "--model", str(a), "--out", str(tmp_path / "e")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and str(a) in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("bad", ["missing", "foreign"])
def test_a_missing_or_foreign_model_file_is_one_line_and_exit_2(runs, tmp_path, capsys, bad):
    path, _ = runs
    model = tmp_path / "model.safetensors"
    if bad == "foreign":
        model.write_bytes(b"not a checkpoint")
    code = main(["evaluate", "--dataset", str(path), "--model", str(model), "--out", str(tmp_path / "e")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "--model" in err and str(model) in err and len(err.splitlines()) == 1
    assert not (tmp_path / "e").exists()  # refused before the output directory was made
