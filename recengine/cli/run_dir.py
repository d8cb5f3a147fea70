"""Output directories that already hold a run: refused unless --overwrite, and then only recengine's own files
removed.

A directory "holds a run" when it contains a file some `recengine` command writes (``RUN_FILES``). Without
--overwrite the command stops before any work with one line naming the directory and those files. With
--overwrite the previous run's files are removed first: the names in ``RUN_FILES`` and the names the previous
run's own record lists (the ``"files"`` of its results.json, metrics.json, ope.json, coldstart.json or
bench.json), never anything else; files recengine did not write stay where they are, and the command says so.

    removed, kept = prepare_out("--out", args.out, overwrite=args.overwrite)
"""

from __future__ import annotations

import json
import os
import shutil

from recengine.cli.common import UsageError, check_writable_dir

__all__ = ["RECORDS", "RUN_DIRS", "RUN_FILES", "prepare_out", "previous_run"]

RECORDS = ("results.json", "metrics.json", "ope.json", "coldstart.json", "bench.json")
"""each command's record of its run, holding the list of the files it wrote under "files" (compare, train, ope,
coldstart, bench)"""

RUN_FILES = {
    "compare": (
        "results.json",
        "report.md",
        "learning_curves.png",
        "accuracy_vs_diversity.png",
        "simulator.safetensors",
        "config.json",
    ),
    "train": ("metrics.json", "curve.png", "checkpoint.safetensors", "model.safetensors", "config.json"),
    "coldstart": ("coldstart.json", "coldstart.md"),
    "ope": ("ope.json", "ope.md", "ope.png"),
    "bench": ("bench.json", "bench.png"),
}
"""the files each command may write into its --out directory"""

RUN_DIRS = ("sharded",)
"""directories a command writes (a data-parallel `train`'s sharded model)"""


def _listed(directory: str) -> set[str]:
    """The plain names the run records in `directory` list under "files" (anything else ignored)."""
    names: set[str] = set()
    for record in RECORDS:
        try:
            with open(os.path.join(directory, record), encoding="utf-8") as f:
                files = json.load(f).get("files", [])
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(files, list):
            names.update(n for n in files if isinstance(n, str) and n and os.path.basename(n) == n and n != "..")
    return names


def previous_run(directory: str) -> list[str]:
    """The names in `directory` a recengine run wrote (sorted; empty when it holds no run or does not exist)."""
    if not os.path.isdir(directory):
        return []
    ours = {name for files in RUN_FILES.values() for name in files} | set(RUN_DIRS) | _listed(directory)
    return sorted(name for name in os.listdir(directory) if name in ours)


def prepare_out(option: str, directory: str, *, overwrite: bool, keep: bool = False) -> tuple[list[str], list[str]]:
    """Make `directory` ready for a new run; returns (names removed, names kept that recengine did not write).

    A directory that holds a run is a UsageError naming `option` unless `overwrite` (remove that run's files
    first) or `keep` (the run continues the previous one, e.g. `train --resume`: nothing is removed). Also
    checks that the directory can be written (`check_writable_dir`)."""
    found = previous_run(directory)
    removed: list[str] = []
    kept: list[str] = []
    if found and not keep:
        if not overwrite:
            shown = ", ".join(found[:4]) + (f" and {len(found) - 4} more" if len(found) > 4 else "")
            raise UsageError(
                f"{option}: {directory} already holds a run ({shown}); pass --overwrite to replace it or choose "
                "another directory"
            )
        for name in found:
            path = os.path.join(directory, name)
            try:
                if os.path.isdir(path) and not os.path.islink(path):
                    if name in RUN_DIRS:
                        shutil.rmtree(path)
                        removed.append(name)
                    continue
                os.remove(path)
                removed.append(name)
            except OSError as exc:
                raise UsageError(f"{option}: cannot remove {path} ({exc.strerror or exc})") from None
        kept = sorted(set(os.listdir(directory)) - set(found))
    check_writable_dir(option, directory)
    return removed, kept


def overwrite_note(directory: str, removed: list[str], kept: list[str]) -> str | None:
    """The line saying what --overwrite did (None when it removed nothing)."""
    if not removed:
        return None
    note = f"--overwrite: removed the previous run's {len(removed)} file(s) from {directory}"
    if kept:
        shown = ", ".join(kept[:4]) + (f" and {len(kept) - 4} more" if len(kept) > 4 else "")
        note += f"; kept {len(kept)} file(s) recengine did not write ({shown})"
    return note
