"""The sequence-file loader (``user item`` per line, time order) on small fixtures, bad input, and the shared copy
of Amazon Beauty."""

import os

import numpy as np
import pytest

from recengine.data import histories_of, leave_one_out
from recengine.data.dataset import MovieLensFormatError
from recengine.data.sequence_file import load_sequence_file

BEAUTY = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "datasets", "beauty.txt")
BEAUTY_SHA256 = "f480b7a7403852342ffd8f9809bb30697dd669be31813d0e204b698fec86ef49"


def test_lines_become_time_ordered_sequences(tmp_path):
    path = tmp_path / "seq.txt"
    path.write_text("10 7\n10 3\n2 3\n10 9\n\n2 7\n")
    data = load_sequence_file(path)
    assert (data.name, data.num_users, data.num_items, data.num_interactions) == ("seq", 2, 3, 5)
    assert data.raw_user_ids.tolist() == [2, 10] and data.raw_item_ids.tolist() == [3, 7, 9]
    split = leave_one_out(histories_of(data))
    h = split.histories
    user10 = h.items[h.offsets[1] : h.offsets[2]]
    assert data.raw_item_ids[user10].tolist() == [7, 3, 9]  # file order is time order
    assert data.raw_item_ids[split.target("test")[1]] == 9 and data.raw_item_ids[split.target("valid")[1]] == 3


def test_string_ids_are_kept(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text("alice B00X\nbob A11Y\nalice A11Y\n")
    data = load_sequence_file(path, name="shop")
    assert data.name == "shop"
    assert list(data.raw_user_ids) == ["alice", "bob"] and list(data.raw_item_ids) == ["A11Y", "B00X"]
    assert data.raw_item_ids[data.item].tolist() == ["B00X", "A11Y", "A11Y"]


@pytest.mark.parametrize(
    "text, match",
    [("1 2\n1 2 3\n", r"line 2: expected 2"), ("", "no data lines"), ("\n\n", "no data lines"), ("1\n", "line 1")],
)
def test_malformed_lines_name_file_and_line(tmp_path, text, match):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(MovieLensFormatError, match=match) as err:
        load_sequence_file(path)
    assert str(path) in str(err.value)


def test_missing_file_and_wrong_digest_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_sequence_file(tmp_path / "nope.txt")
    path = tmp_path / "a.txt"
    path.write_text("1 2\n")
    with pytest.raises(MovieLensFormatError, match="sha256"):
        load_sequence_file(path, sha256="0" * 64)
    path.write_bytes(b"1 \xff\n")
    with pytest.raises(MovieLensFormatError, match="not UTF-8"):
        load_sequence_file(path)


@pytest.mark.skipif(not os.path.isfile(BEAUTY), reason="the shared datasets folder is not beside this checkout")
def test_amazon_beauty_has_the_published_counts():
    data = load_sequence_file(BEAUTY, name="beauty", sha256=BEAUTY_SHA256)
    assert (data.num_users, data.num_items, data.num_interactions) == (40226, 54542, 353962)
    split = leave_one_out(histories_of(data))
    assert np.all(split.histories.lengths >= 5)  # the 5-core the BERT4Rec preprocessing applied
