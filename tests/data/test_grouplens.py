"""GroupLens downloads: checked against the pinned digest before anything is unpacked (served from file:// URLs
here; the one real download is skipped when GroupLens cannot be reached)."""

import hashlib
import urllib.request
import zipfile

import pytest

from recengine.data import grouplens, load_movielens


def _zip(tmp_path, name: str = "ml-1m"):
    archive = tmp_path / f"{name}.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr(f"{name}/ratings.dat", "1::10::5::978300760\n")
        z.writestr(f"{name}/users.dat", "1::F::1::10::48067\n")
        z.writestr(f"{name}/movies.dat", "10::Toy Story (1995)::Comedy\n")
    return archive, hashlib.sha256(archive.read_bytes()).hexdigest()


def test_a_download_with_the_pinned_digest_is_unpacked(tmp_path, monkeypatch):
    archive, digest = _zip(tmp_path)
    monkeypatch.setitem(grouplens.CHECKSUMS, "ml-1m", ("sha256", digest))
    target = grouplens.download_grouplens("ml-1m", str(tmp_path / "cache"), url=archive.as_uri())
    assert target == str(tmp_path / "cache" / "ml-1m")
    files = sorted(p.name for p in (tmp_path / "cache" / "ml-1m").iterdir())
    assert files == ["movies.dat", "ratings.dat", "users.dat"]


def test_a_download_with_another_digest_is_rejected_and_not_unpacked(tmp_path, monkeypatch):
    archive, _ = _zip(tmp_path)
    monkeypatch.setitem(grouplens.CHECKSUMS, "ml-1m", ("sha256", "0" * 64))
    with pytest.raises(ValueError, match="does not match"):
        grouplens.download_grouplens("ml-1m", str(tmp_path / "cache"), url=archive.as_uri())
    assert list((tmp_path / "cache").iterdir()) == []


def test_load_movielens_downloads_when_no_copy_is_there(tmp_path, monkeypatch):
    archive, digest = _zip(tmp_path)
    monkeypatch.setitem(grouplens.CHECKSUMS, "ml-1m", ("sha256", digest))
    monkeypatch.setattr(grouplens, "GROUPLENS_URL", (tmp_path).as_uri() + "/{name}.zip")
    monkeypatch.delenv("RECENGINE_DATA", raising=False)
    monkeypatch.setenv("RECENGINE_CACHE", str(tmp_path / "cache"))
    assert load_movielens("ml-1m").num_interactions == 1


def test_an_unknown_dataset_is_named():
    with pytest.raises(ValueError, match="ml-10m"):
        grouplens.download_grouplens("ml-10m")


def _grouplens_reachable() -> bool:
    try:
        request = urllib.request.Request(grouplens.grouplens_url("ml-100k"), method="HEAD")
        with urllib.request.urlopen(request, timeout=5):
            return True
    except OSError:
        return False


@pytest.mark.skipif(not _grouplens_reachable(), reason="files.grouplens.org is not reachable from this machine")
def test_ml100k_from_grouplens_matches_its_pinned_digest(tmp_path):
    directory = grouplens.download_grouplens("ml-100k", str(tmp_path))
    data = load_movielens("ml-100k", root=directory, download=False)
    assert (data.num_users, data.num_items, data.num_interactions) == (943, 1682, 100_000)
