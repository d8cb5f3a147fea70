"""`recengine coldstart`: the options it hands to the report, and its usage errors (one line, exit code 2, before
any training)."""

import pytest

from recengine.cli import main
from recengine.data.synthetic import make_synthetic
from recengine.report import cold_start


@pytest.fixture(scope="module")
def data():
    d = make_synthetic(num_users=40, num_items=30, min_len=5, max_len=12, seed=4)
    d.item_titles = [f"title word{i % 5} genre{i % 3}" for i in range(d.num_items)]
    return d


@pytest.mark.parametrize(("flag", "expected"), [([], None), (["--id-dropout", "0.3"], 0.3)])
def test_cli_passes_id_dropout_through(data, tmp_path, monkeypatch, capsys, flag, expected):
    seen = {}

    def fake_run(data, out, **kw):
        seen.update(kw)
        return {"variants": {}}

    monkeypatch.setattr("recengine.data.movielens.load_movielens", lambda *a, **k: data)
    monkeypatch.setattr(cold_start, "run_cold_start", fake_run)
    assert main(["coldstart", "--out", str(tmp_path / "o"), "--variants", "genre", *flag]) == 0
    assert seen.get("id_dropout") == expected  # absent: run_cold_start's default
    assert (seen["variants"], seen["share"], seen["seed"], seen["base"].max_epochs) == (["genre"], 0.1, 0, 30)
    assert "coldstart.json and coldstart.md (0 variants)" in capsys.readouterr().out


@pytest.mark.parametrize("value", ["1", "-0.2", "x"])
def test_cli_rejects_a_bad_id_dropout(tmp_path, value):
    with pytest.raises(SystemExit) as exc:
        main(["coldstart", "--out", str(tmp_path), "--id-dropout", value])
    assert exc.value.code == 2


def test_missing_data_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    def missing(*a, **k):
        raise FileNotFoundError("ml-100k not found; looked in:\n  here")

    monkeypatch.setattr("recengine.data.movielens.load_movielens", missing)
    assert main(["coldstart", "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err == "recengine coldstart: error: ml-100k not found; looked in:; here\n"
