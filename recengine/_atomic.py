"""Atomic file writes: a crash mid-write never leaves half a file, and the previous file stays intact.

A write goes to ``<name>.<pid>-<random>.tmp/<name>``, a file in a private directory beside the target (so a
writer that makes temporary files of its own, as safetensors does, makes them in there too); it is fsynced,
renamed over the target, and the directory is fsynced so the rename itself survives a power loss. A process
killed mid-write leaves its temporary directory behind; the next save or load of the same path removes it
(`remove_orphans`), recognising an orphan by its writer being gone (no live process with that pid, or this
process with no write open).
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import tempfile
import threading

_ACTIVE: set[str] = set()
"""temporary files this process is writing now (never removed as orphans)"""
_ACTIVE_LOCK = threading.Lock()
_TMP_NAME = re.compile(r"^(?P<pid>\d+)-[A-Za-z0-9_]+$")


def _temporary_files(path: str) -> list[str]:
    """Every ``<name>.<anything>.tmp`` (file or directory) beside `path`."""
    directory, base = os.path.split(os.path.abspath(path))
    return glob.glob(os.path.join(glob.escape(directory), glob.escape(base) + ".*.tmp"))


def _writer_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # this process: only the files in _ACTIVE are live, checked by the caller
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # a process of another user holds that pid
    return True


def remove_orphans(path: str) -> list[str]:
    """Remove the temporary files that interrupted writes of `path` left behind; returns the removed paths.

    A temporary file whose writer still runs (another live process, or a write open in this one) is kept;
    one of the older ``<name>.<random>.tmp`` form, without a pid, is always an orphan.
    """
    removed = []
    for tmp in _temporary_files(path):
        middle = os.path.basename(tmp)[len(os.path.basename(path)) + 1 : -len(".tmp")]
        match = _TMP_NAME.match(middle)
        with _ACTIVE_LOCK:
            if tmp in _ACTIVE or (match and _writer_alive(int(match["pid"]))):
                continue
        with contextlib.suppress(FileNotFoundError):
            _remove(tmp)
            removed.append(tmp)
    return removed


def _remove(tmp: str) -> None:
    if os.path.isdir(tmp) and not os.path.islink(tmp):
        shutil.rmtree(tmp)
    else:
        os.remove(tmp)


def fsync_directory(directory: str) -> None:
    """Flush `directory`'s entries (a rename into it) to disk; a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems do not support fsync on a directory
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str):
    """Yield a temporary path (in a private directory beside `path`, with `path`'s file name); write it, and on
    success it replaces `path` (os.replace is atomic on one file system) and the directory is fsynced. On any
    exception the temporary directory is removed and `path` is left as it was. Orphans of earlier interrupted
    writes of `path` are removed first."""
    path = os.path.abspath(os.fspath(path))
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path}: is a directory, cannot write a file there")
    remove_orphans(path)
    with _ACTIVE_LOCK:
        private = tempfile.mkdtemp(prefix=f"{os.path.basename(path)}.{os.getpid()}-", suffix=".tmp", dir=directory)
        _ACTIVE.add(private)
    tmp = os.path.join(private, os.path.basename(path))
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_directory(directory)
    finally:
        shutil.rmtree(private, ignore_errors=True)
        with _ACTIVE_LOCK:
            _ACTIVE.discard(private)


def write_text(path: str, text: str) -> None:
    """Write `text` to `path` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text)


def write_json(path: str, obj) -> None:
    """Write `obj` as indented JSON to `path` atomically, creating the folders above it."""
    import json

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_text(path, json.dumps(obj, indent=2) + "\n")
