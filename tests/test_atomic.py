"""recengine._atomic: atomic replace, orphan removal, directory fsync."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from recengine import _atomic


def test_write_text_replaces_the_file(tmp_path):
    path = tmp_path / "a.txt"
    _atomic.write_text(str(path), "one")
    _atomic.write_text(str(path), "two")
    assert path.read_text() == "two"
    assert sorted(os.listdir(tmp_path)) == ["a.txt"]


def test_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "a.txt"
    _atomic.write_text(str(path), "one")
    with pytest.raises(RuntimeError, match="boom"):
        with _atomic.atomic_path(str(path)) as tmp:
            with open(tmp, "w") as f:
                f.write("half")
            raise RuntimeError("boom")
    assert path.read_text() == "one"
    assert sorted(os.listdir(tmp_path)) == ["a.txt"]


@pytest.mark.parametrize("orphan", ["a.txt.abc123.tmp", "a.txt.999999999-abc_12.tmp"])
def test_next_save_removes_an_orphan_of_a_dead_writer(tmp_path, orphan):
    (tmp_path / orphan).write_text("left by a killed save")
    _atomic.write_text(str(tmp_path / "a.txt"), "new")
    assert sorted(os.listdir(tmp_path)) == ["a.txt"]


def test_a_live_writers_temporary_file_is_kept(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / f"a.txt.{proc.pid}-xyz.tmp"
        live.write_text("being written")
        assert _atomic.remove_orphans(str(tmp_path / "a.txt")) == []
        assert live.exists()
    finally:
        proc.kill()
        proc.wait()


def test_next_save_removes_an_orphaned_temporary_directory(tmp_path):
    orphan = tmp_path / "a.txt.999999999-abc.tmp"
    orphan.mkdir()
    (orphan / ".tmpXYZ").write_text("a library's own temporary file")
    _atomic.write_text(str(tmp_path / "a.txt"), "new")
    assert sorted(os.listdir(tmp_path)) == ["a.txt"]


def test_orphans_of_other_files_are_left_alone(tmp_path):
    other = tmp_path / "b.txt.abc.tmp"
    other.write_text("x")
    _atomic.write_text(str(tmp_path / "a.txt"), "new")
    assert other.exists()


def test_a_write_open_in_this_process_is_not_an_orphan(tmp_path):
    path = str(tmp_path / "a.txt")
    with _atomic.atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write("x")
        assert _atomic.remove_orphans(path) == []
        assert os.path.isfile(tmp)


def test_writing_over_a_directory_names_the_path(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(IsADirectoryError, match="is a directory"):
        _atomic.write_text(str(tmp_path / "d"), "x")


def test_fsync_directory_of_a_missing_directory_is_a_no_op(tmp_path):
    assert _atomic.fsync_directory(str(tmp_path / "missing")) is None
