"""recengine.data.local: a path's format from what it is, every format to the same dataset, the columns of a log
found by their usual names, and errors that name the path."""

import numpy as np
import pytest

from recengine.data import load_dataset
from recengine.data.local import data_format, load_local
from tests.data.local_fixture import FORMATS, ITEMS, USERS, rows, write_log


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_gives_the_same_interactions(tmp_path, fmt):
    path = write_log(tmp_path, fmt)
    data = load_local(path)
    assert (data.num_users, data.num_items, data.num_interactions) == (USERS, ITEMS, len(rows()))
    assert data.name == "mylog"
    pairs = sorted(
        (str(data.raw_user_ids[u]), str(data.raw_item_ids[i])) for u, i in zip(data.user.tolist(), data.item.tolist())
    )
    assert pairs == sorted((u, i) for u, i, _ in rows())
    first = np.flatnonzero(data.user == list(map(str, data.raw_user_ids)).index("u3"))
    assert [str(data.raw_item_ids[i]) for i in data.item[first][np.argsort(data.timestamp[first], kind="stable")]] == [
        i for u, i, _ in rows() if u == "u3"
    ]


@pytest.mark.parametrize(
    "name, kind", [("a.txt", "sequence"), ("a.SEQ", "sequence"), ("a.pq", "parquet"), ("a.tsv", "csv")]
)
def test_the_format_comes_from_the_extension(tmp_path, name, kind):
    (tmp_path / name).write_text("")
    assert data_format(tmp_path / name) == kind


def test_a_path_goes_through_load_dataset_too(tmp_path):
    from collections import Counter

    counts = Counter(i for _, i, _ in rows())
    minimum = sorted(counts.values())[ITEMS // 2]  # about half the items have fewer interactions
    data = load_dataset(str(write_log(tmp_path, "csv")), min_item_count=minimum)
    assert data.num_items == sum(c >= minimum for c in counts.values()) < ITEMS


def test_movielens_csv_columns_are_found(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text("userId,movieId,rating,timestamp\n1,10,4.0,100\n1,11,3.0,101\n2,10,5.0,99\n")
    data = load_local(path)
    assert (data.num_users, data.num_items, data.name) == (2, 2, "ratings")


def test_a_log_without_a_user_column_names_the_path_and_its_columns(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("who,item,timestamp\na,b,1\n")
    with pytest.raises(ValueError, match=rf"{path}: no user column .*the file has who, item, timestamp"):
        load_local(path)


def test_a_bad_value_names_the_path(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("user,item,timestamp\na,b,soon\n")
    with pytest.raises(ValueError, match=str(path)):
        load_local(path)


def test_unknown_format_and_missing_path(tmp_path):
    (tmp_path / "a.json").write_text("{}")
    with pytest.raises(ValueError, match=r"a.json: unknown data format '.json'; expected a RecBole atomic"):
        load_local(tmp_path / "a.json")
    with pytest.raises(FileNotFoundError, match="nothing"):
        load_local(tmp_path / "nothing.csv")
    with pytest.raises(ValueError, match=r"exactly one <name>\.inter file, found no \.inter file"):
        load_local(tmp_path)  # a directory without an atomic dataset
