"""load_dataset: the protocol each benchmark name applies, and where beauty.txt is looked for."""

import pytest

from recengine.data.registry import BEAUTY_SHA256, DATASETS, PROTOCOL_MIN_ITEM_COUNT, load_dataset


def write_ml1m(d):
    d.mkdir(parents=True, exist_ok=True)
    ratings = [f"{u}::10::5::{100 + u}" for u in range(1, 7)] + ["1::20::3::5", "2::20::4::6"]
    (d / "ratings.dat").write_text("\n".join(ratings) + "\n")
    (d / "users.dat").write_text("".join(f"{u}::F::1::10::48067\n" for u in range(1, 7)))
    (d / "movies.dat").write_text("10::Toy Story (1995)::Comedy\n20::Heat (1995)::Action\n")


def test_ml1m_drops_items_with_fewer_than_five_ratings(tmp_path):
    write_ml1m(tmp_path / "ml-1m")
    data = load_dataset("ml-1m", root=str(tmp_path))
    assert PROTOCOL_MIN_ITEM_COUNT["ml-1m"] == 5
    assert (data.num_items, data.num_interactions, data.raw_item_ids.tolist()) == (1, 6, [10])
    every = load_dataset("ml-1m", root=str(tmp_path), min_item_count=0)
    assert (every.num_items, every.num_interactions) == (2, 8)


def test_beauty_is_found_under_root_and_checked(tmp_path, monkeypatch):
    monkeypatch.delenv("RECENGINE_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="--data-root"):
        load_dataset("beauty")
    (tmp_path / "beauty").mkdir()
    (tmp_path / "beauty" / "beauty.txt").write_text("1 1\n1 2\n")
    with pytest.raises(ValueError, match=BEAUTY_SHA256):  # a different file is refused, the pinned digest named
        load_dataset("beauty", root=str(tmp_path))


def test_unknown_name_lists_the_choices():
    with pytest.raises(ValueError, match="ml-1m") as err:
        load_dataset("ml-10m")
    assert "beauty" in str(err.value) and "beauty" in DATASETS
