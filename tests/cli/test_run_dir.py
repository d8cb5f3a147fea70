"""recengine.cli.run_dir: an output directory holding a run is refused (one line naming it); --overwrite removes
that run's files (the known names and those its record lists), never a file recengine did not write; --resume keeps
everything."""

import json

import pytest

from recengine.cli.common import UsageError
from recengine.cli.run_dir import RUN_FILES, overwrite_note, prepare_out, previous_run


def test_a_new_or_empty_directory_is_ready(tmp_path):
    assert prepare_out("--out", str(tmp_path / "new"), overwrite=False) == ([], [])
    assert (tmp_path / "new").is_dir()
    assert prepare_out("--out", str(tmp_path / "new"), overwrite=False) == ([], [])


def test_a_directory_of_other_files_is_no_run(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    assert previous_run(str(tmp_path)) == []
    prepare_out("--out", str(tmp_path), overwrite=False)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_run_is_refused_in_one_line_naming_the_directory_and_its_files(tmp_path):
    for name in ("results.json", "report.md", "learning_curves.png"):
        (tmp_path / name).write_text("x")
    with pytest.raises(UsageError) as info:
        prepare_out("--out", str(tmp_path), overwrite=False)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"--out: {tmp_path} already holds a run")
    assert "learning_curves.png" in message and "--overwrite" in message
    assert (tmp_path / "results.json").exists()


def test_overwrite_removes_the_runs_files_and_keeps_the_users(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps({"files": ["results.json", "extra_plot.png"]}))
    (tmp_path / "extra_plot.png").write_text("listed by the run")
    (tmp_path / "learning_curves.png").write_text("a known name")
    (tmp_path / "sharded").mkdir()
    (tmp_path / "sharded" / "rank0.safetensors").write_text("x")
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "data").mkdir()
    removed, kept = prepare_out("--out", str(tmp_path), overwrite=True)
    assert removed == ["extra_plot.png", "learning_curves.png", "results.json", "sharded"]
    assert kept == ["data", "notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "notes.txt"]
    note = overwrite_note(str(tmp_path), removed, kept)
    assert "removed the previous run's 4 file(s)" in note and "kept 2 file(s)" in note and "notes.txt" in note


def test_a_record_cannot_point_outside_the_directory(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (tmp_path / "precious.txt").write_text("outside")
    (run / "metrics.json").write_text(json.dumps({"files": ["../precious.txt", "/etc/passwd", "metrics.json"]}))
    prepare_out("--out", str(run), overwrite=True)
    assert (tmp_path / "precious.txt").read_text() == "outside" and list(run.iterdir()) == []


def test_keep_continues_a_run_untouched(tmp_path):
    (tmp_path / "checkpoint.safetensors").write_text("x")
    assert prepare_out("--out", str(tmp_path), overwrite=False, keep=True) == ([], [])
    assert (tmp_path / "checkpoint.safetensors").exists()


def test_every_command_that_writes_has_its_files_known():
    from recengine.cli import bench, coldstart, compare, ope, train

    assert set(RUN_FILES) == {m.__name__.rsplit(".", 1)[1] for m in (bench, coldstart, compare, ope, train)}
    assert RUN_FILES["bench"] == (bench.JSON_FILE, bench.PLOT_FILE)
