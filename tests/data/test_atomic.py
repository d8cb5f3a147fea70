"""RecBole atomic datasets (.inter / .item / .user with typed headers), from small files written here."""

import numpy as np
import pytest

from recengine.data import histories_of, leave_one_out, load_atomic
from recengine.data.dataset import year_bucket
from recengine.data.movielens import MovieLensFormatError

INTER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n" + "".join(
    f"{u}\t{i}\t{r}\t{t}\n"
    for u, i, r, t in [(7, 30, 4, 5), (7, 10, 3, 6), (2, 10, 5, 1), (2, 20, 1, 2), (2, 30, 2, 3)]
)
ITEM = (
    "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
    "10\tToy Story\t1995\tAnimation Comedy\n"
    "20\tHeat\t1995\tAction\n"
    "30\tCasino\t1995\tDrama\n"
    "40\tNever Rated\t1990\tDrama\n"
)
USER = "user_id:token\tage:float\tgender:token\n2\t30\tF\n7\t17\tM\n"


def _write(directory, **files):
    directory.mkdir(exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


def test_interactions_get_contiguous_ids_in_raw_id_order(tmp_path):
    data = load_atomic(_write(tmp_path / "d", **{"toy.inter": INTER}))
    assert data.name == "toy" and (data.num_users, data.num_items) == (2, 3)
    np.testing.assert_array_equal(data.raw_user_ids, [2, 7])
    np.testing.assert_array_equal(data.user, [1, 1, 0, 0, 0])
    np.testing.assert_array_equal(data.item, [2, 0, 0, 1, 2])


def test_item_text_goes_to_item_titles_and_class_to_genres(tmp_path):
    data = load_atomic(_write(tmp_path / "d", **{"toy.inter": INTER, "toy.item": ITEM}))
    assert data.item_titles == ["Toy Story", "Heat", "Casino", "Never Rated"]
    assert data.genre_names == ("Animation", "Comedy", "Action", "Drama")
    np.testing.assert_array_equal(data.item_features["genre_offsets"], [0, 2, 3, 4, 5])


def test_user_file_gives_categorical_features(tmp_path):
    data = load_atomic(_write(tmp_path / "d", **{"toy.inter": INTER, "toy.user": USER}))
    assert set(data.user_features) == {"age", "gender"}
    np.testing.assert_array_equal(data.user_features["gender"], [0, 1])


def test_the_loaded_dataset_feeds_the_splits(tmp_path):
    data = load_atomic(_write(tmp_path / "d", **{"toy.inter": INTER, "toy.item": ITEM, "toy.user": USER}))
    split = leave_one_out(histories_of(data))
    assert len(split.eval_users) >= 1


def test_string_ids_are_kept_as_raw_ids(tmp_path):
    inter = "user_id:token\titem_id:token\nann\tx\nbob\ty\n"
    data = load_atomic(_write(tmp_path / "d", **{"s.inter": inter}))
    assert list(data.raw_user_ids) == ["ann", "bob"] and data.rating.tolist() == [1.0, 1.0]


@pytest.mark.parametrize(
    "inter, match",
    [
        ("user_id\titem_id\n1\t2\n", "name:type"),
        ("user_id:token\trating:float\n1\t2\n", "item_id"),
        ("user_id:token\titem_id:token\n1\n", "line 2"),
        ("user_id:token\titem_id:token\trating:float\n1\t2\tbad\n", "rating"),
        ("user_id:token\titem_id:token\n", "no data rows"),
    ],
)
def test_a_malformed_inter_file_names_the_file(tmp_path, inter, match):
    directory = _write(tmp_path / "d", **{"bad.inter": inter})
    with pytest.raises(MovieLensFormatError, match=match) as err:
        load_atomic(directory)
    assert "bad.inter" in str(err.value)


@pytest.mark.parametrize("files", [{}, {"a.inter": INTER, "b.inter": INTER}])
def test_a_directory_needs_exactly_one_inter_file(tmp_path, files):
    with pytest.raises(FileNotFoundError, match=".inter"):
        load_atomic(_write(tmp_path / "d", **files))


def test_a_missing_directory_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_atomic(tmp_path / "nowhere")


def test_a_year_that_is_not_a_number_falls_back_to_the_year_in_the_title(tmp_path):
    # ml-100k's atomic copy has release_year "V" for one item whose title ends "(1995)"
    item = (
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "10\tToy Story\t1995\tAnimation\n"
        "20\tLand Before Time III (1995)\tV\tAnimation\n"
        "30\tCasino\t?\tDrama\n"
    )
    data = load_atomic(_write(tmp_path / "d", **{"toy.inter": INTER, "toy.item": item}))
    years = data.item_features["year"]
    assert years[1] == years[0] == year_bucket(1995)
    assert years[2] == 0  # neither the column nor the title holds a year: unknown
