"""load_interactions: DataFrames, Arrow tables and Parquet files of any id types, through the same splits; bad
input named."""

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
pd = pytest.importorskip("pandas")
pq = pytest.importorskip("pyarrow.parquet")

from recengine.data import histories_of, leave_one_out  # noqa: E402
from recengine.data.interactions import load_interactions  # noqa: E402


def frame():
    return pd.DataFrame(
        {
            "user": ["u2", "u1", "u1", "u2", "u1"],
            "item": ["sku-9", "sku-3", "sku-9", "sku-1", "sku-1"],
            "timestamp": [5, 7, 3, 6, 7],
            "stars": [4.0, 5.0, 3.0, 1.0, 2.0],
        }
    )


def check(data):
    assert (data.num_users, data.num_items, data.num_interactions) == (2, 3, 5)
    assert list(data.raw_user_ids) == ["u1", "u2"] and list(data.raw_item_ids) == ["sku-1", "sku-3", "sku-9"]
    assert data.raw_item_ids[data.item].tolist() == ["sku-9", "sku-3", "sku-9", "sku-1", "sku-1"]
    split = leave_one_out(histories_of(data))
    h = split.histories
    # u1: sku-9 at 3, then sku-3 and sku-1 both at 7: the tie keeps the log's order
    assert data.raw_item_ids[h.items[h.offsets[0] : h.offsets[1]]].tolist() == ["sku-9", "sku-3", "sku-1"]


def test_dataframe_arrow_and_parquet_agree(tmp_path):
    check(load_interactions(frame()))
    check(load_interactions(pa.Table.from_pandas(frame())))
    pq.write_table(pa.Table.from_pandas(frame()), tmp_path / "log.parquet")
    data = load_interactions(tmp_path / "log.parquet", rating_col="stars")
    check(data)
    assert data.name == "log" and data.rating.tolist() == [4.0, 5.0, 3.0, 1.0, 2.0]


def test_integer_ids_column_names_and_datetimes():
    df = pd.DataFrame({"uid": [30, 10, 30], "iid": [7, 7, 8], "when": pd.to_datetime([100, 50, 200], unit="s")})
    data = load_interactions(df, user_col="uid", item_col="iid", time_col="when", name="mine")
    assert data.name == "mine" and data.raw_user_ids.tolist() == [10, 30]
    assert data.timestamp.tolist() == [100, 50, 200] and data.rating.tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize(
    "change, kw, error, match",
    [
        (lambda df: df.drop(columns="item"), {}, ValueError, "item_col: .* no column 'item'"),
        (lambda df: df.iloc[:0], {}, ValueError, "no rows"),
        (lambda df: df.assign(timestamp=[1.0, np.nan, 2.0, 3.0, 4.0]), {}, ValueError, "timestamp"),
        (lambda df: df.assign(timestamp=[1.0, 1e30, 2.0, 3.0, 4.0]), {}, ValueError, "finite"),
        (lambda df: df.assign(timestamp=["a", "b", "c", "d", "e"]), {}, ValueError, "numeric or a timestamp"),
        (lambda df: df.assign(user=["a", None, "c", "d", "e"]), {}, ValueError, "null"),
        (lambda df: df, {"rating_col": "nope"}, ValueError, "rating_col"),
        (lambda df: df.assign(stars=[1.0, np.inf, 1.0, 1.0, 1.0]), {"rating_col": "stars"}, ValueError, "stars"),
        (lambda df: df, {"user_col": 3}, TypeError, "user_col"),
    ],
)
def test_bad_input_is_named(change, kw, error, match):
    with pytest.raises(error, match=match):
        load_interactions(change(frame()), **kw)


def test_wrong_source_and_missing_or_broken_file(tmp_path):
    with pytest.raises(TypeError, match="source"):
        load_interactions([("u", "i", 1)])
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_interactions(tmp_path / "none.parquet")
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(ValueError, match="bad.parquet"):
        load_interactions(tmp_path / "bad.parquet")
