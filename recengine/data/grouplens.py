"""MovieLens zips from GroupLens (https://files.grouplens.org/datasets/movielens/), checked against a pinned digest
and unpacked once into the cache (``$RECENGINE_CACHE/grouplens/<name>/``).

The digests are the ones GroupLens publishes beside each zip (``<name>.zip.md5``); a download whose digest differs
is deleted and reported, never unpacked.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile

from recengine.data.wheel_cache import cache_dir

__all__ = ["CHECKSUMS", "GROUPLENS_URL", "download_grouplens", "file_digest", "grouplens_cache", "grouplens_url"]

GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/{name}.zip"
"""where each dataset's zip is downloaded from"""

CHECKSUMS = {
    "ml-100k": ("md5", "0e33842e24a9c977be4e0107933c0723"),
    "ml-1m": ("md5", "c4d9eecfca2ab87c1945afe126590906"),
    "ml-20m": ("md5", "cd245b17a1ae2cc31bb14903e1204af3"),
    "ml-25m": ("md5", "6b51fb2759a8657d3bfcbfc42b592ada"),
}
"""name -> (hashlib algorithm, hex digest) of the GroupLens zip"""


def grouplens_url(name: str) -> str:
    return GROUPLENS_URL.format(name=name)


def grouplens_cache() -> str:
    """The directory the zips are unpacked into (one ``<name>/`` folder each)."""
    return os.path.join(cache_dir(), "grouplens")


def file_digest(path: str, algorithm: str) -> str:
    """The hex digest of the file at ``path`` (read in chunks)."""
    digest = hashlib.new(algorithm, usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_grouplens(
    name: str, directory: str | None = None, *, url: str | None = None, timeout: float = 60.0
) -> str:
    """The directory holding ``name``'s unpacked files (``<directory>/<name>``, default under the cache), downloaded
    from ``url`` (default GroupLens) and checked against ``CHECKSUMS[name]`` unless already there.

    Raises OSError (``urllib.error.URLError`` included) when the download fails, ValueError when the digest differs
    or the zip does not hold ``<name>/``."""
    if name not in CHECKSUMS:
        raise ValueError(f"name: {name!r} is not a GroupLens dataset this loader knows ({sorted(CHECKSUMS)})")
    directory = directory or grouplens_cache()
    target = os.path.join(directory, name)
    if os.path.isdir(target):
        return target
    url = url or grouplens_url(name)
    algorithm, expected = CHECKSUMS[name]
    os.makedirs(directory, exist_ok=True)
    work = tempfile.mkdtemp(prefix=f"{name}-", suffix=".tmp", dir=directory)
    try:
        archive = os.path.join(work, f"{name}.zip")
        with urllib.request.urlopen(url, timeout=timeout) as response, open(archive, "wb") as out:
            shutil.copyfileobj(response, out)
        actual = file_digest(archive, algorithm)
        if actual != expected:
            raise ValueError(f"{url}: {algorithm} {actual} does not match the pinned {expected}; the file was deleted")
        with zipfile.ZipFile(archive) as z:
            members = [m for m in z.namelist() if m.startswith(f"{name}/")]
            if not members:
                raise ValueError(f"{url}: the zip holds no {name}/ folder")
            z.extractall(work, members)
        os.replace(os.path.join(work, name), target)  # atomic: a half-unpacked copy is never seen
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


DOWNLOAD_ERRORS = (OSError, urllib.error.URLError, ValueError, zipfile.BadZipFile)
"""what a failed download raises (the loaders record it and try their next source)"""
