"""Malformed dataset files: every field a loader reads is checked (finite, in range, non-empty ids, integer
timestamps that fit), and the error names the file, the line and the column.

A table of the values seen in the wild, then property tests that write a valid file of each format, spoil one
field of one row with a bad value, and expect the error to point at exactly that field."""

from __future__ import annotations

import os
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recengine.data.atomic import parse_atomic, parse_atomic_text
from recengine.data.dataset import MovieLensFormatError
from recengine.data.movielens import ML100K_GENRES, parse_movielens
from recengine.data.movielens_csv import parse_movielens_csv
from recengine.data.open_bandit import OpenBanditFormatError, parse_open_bandit
from recengine.data.sequence_file import parse_sequence_text
from tests.data.obd_fixture import item_context_csv, random_log_csv

# ------------------------------------------------------------------------------------------ valid files
USERS, ITEMS = (1, 2, 3), (1, 2, 3)
U_USER = "".join(f"{u}|{20 + u}|M|technician|8571{u}\n" for u in USERS)
U_ITEM = "".join(
    f"{i}|Movie {i} (1995)|01-Jan-1995||http://x|" + "|".join("0" * len(ML100K_GENRES)) + "\n" for i in ITEMS
)
USERS_DAT = "".join(f"{u}::F::18::10::4806{u}\n" for u in USERS)
MOVIES_DAT = "".join(f"{i}::Movie {i} (1995)::Comedy|Drama\n" for i in ITEMS)

ROW = st.tuples(st.sampled_from(USERS), st.sampled_from(ITEMS), st.integers(1, 5), st.integers(0, 2**40))
ROWS = st.lists(ROW, min_size=1, max_size=6)

BAD_INT = ["", " ", "x", "nan", "inf", "1.5", "1e30", "99999999999999999999"]
BAD_FLOAT = ["", "x", "nan", "inf", "-inf"]
BAD_TIMESTAMP_ATOMIC = ["", "x", "nan", "inf", "1e30", "1.5"]


def _inter_lines(rows, sep):
    return "".join(sep.join(str(v) for v in r) + "\n" for r in rows)


def _spoil(text: str, lineno: int, column: int, value: str, sep: str) -> str:
    lines = text.splitlines()
    fields = lines[lineno - 1].split(sep)
    fields[column - 1] = value
    lines[lineno - 1] = sep.join(fields)
    return "\n".join(lines) + "\n"


def _ml100k(u_data: str):
    texts = {"u.data": u_data, "u.user": U_USER, "u.item": U_ITEM}
    return parse_movielens(texts, {k: f"/d/{k}" for k in texts})


def _ml1m(ratings: str):
    texts = {"ratings.dat": ratings, "users.dat": USERS_DAT, "movies.dat": MOVIES_DAT}
    return parse_movielens(texts, {k: f"/d/{k}" for k in texts}, name="ml-1m")


ATOMIC_HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"


def _atomic(inter: str):
    return parse_atomic({"inter": (parse_atomic_text(inter, "/d/x.inter"), "/d/x.inter")}, "x")


def _sequence(text: str):
    return parse_sequence_text(text, "/d/beauty.txt", name="beauty")


MOVIES_CSV = "movieId,title,genres\n" + "".join(f"{i},Movie {i} (1995),Comedy|Drama\n" for i in ITEMS)


def _ratings_csv(text: str):
    """The CSV layout (ml-20m, ml-25m) with ratings.csv holding `text` (after the header)."""
    with tempfile.TemporaryDirectory() as directory:
        with open(os.path.join(directory, "ratings.csv"), "w") as f:
            f.write("userId,movieId,rating,timestamp\n" + text)
        with open(os.path.join(directory, "movies.csv"), "w") as f:
            f.write(MOVIES_CSV)
        return parse_movielens_csv(directory, "ml-20m")


# ------------------------------------------------------------------------------------------ the table
CASES = [
    # (id, parse, text, the words the error must hold)
    ("atomic-timestamp-nan", _atomic, ATOMIC_HEADER + "1\t2\t3\tnan\n", "/d/x.inter: line 2, column 4 (timestamp)"),
    ("atomic-timestamp-huge", _atomic, ATOMIC_HEADER + "1\t2\t3\t1e30\n", "/d/x.inter: line 2, column 4 (timestamp)"),
    ("atomic-timestamp-fraction", _atomic, ATOMIC_HEADER + "1\t2\t3\t5.5\n", "whole number"),
    ("atomic-rating-nan", _atomic, ATOMIC_HEADER + "1\t2\tnan\t5\n", "/d/x.inter: line 2, column 3 (rating)"),
    ("atomic-rating-inf", _atomic, ATOMIC_HEADER + "1\t2\t-inf\t5\n", "line 2, column 3 (rating)"),
    ("atomic-user-empty", _atomic, ATOMIC_HEADER + "\t2\t3\t5\n", "/d/x.inter: line 2, column 1 (user_id): empty"),
    ("atomic-item-empty", _atomic, ATOMIC_HEADER + "1\t \t3\t5\n", "/d/x.inter: line 2, column 2 (item_id): empty"),
    ("ml100k-timestamp-huge", _ml100k, "1\t2\t3\t99999999999999999999\n", "/d/u.data: line 1, column 4: timestamp"),
    ("ml100k-timestamp-float", _ml100k, "1\t2\t3\t1.5\n", "/d/u.data: line 1, column 4: timestamp"),
    ("ml100k-rating-nan", _ml100k, "1\t2\tnan\t5\n", "/d/u.data: line 1, column 3: rating is not finite"),
    ("ml100k-user-empty", _ml100k, "\t2\t3\t5\n", "/d/u.data: line 1, column 1: user id"),
    ("ml1m-rating-inf", _ml1m, "1::2::inf::5\n", "/d/ratings.dat: line 1, column 3: rating is not finite"),
    ("ml1m-item-empty", _ml1m, "1::::3::5\n", "/d/ratings.dat: line 1, column 2: item id"),
    ("sequence-one-field", _sequence, "1 2\n3\n", "/d/beauty.txt: line 2: expected 2"),
    ("sequence-three-fields", _sequence, "1 2 3\n", "/d/beauty.txt: line 1: expected 2"),
    ("sequence-no-lines", _sequence, "\n  \n", "/d/beauty.txt: no data lines"),
    ("csv-rating-word", _ratings_csv, "1,2,3,5\n1,3,x,6\n", "ratings.csv: line 3, column 3: rating is not a number"),
    ("csv-rating-nan", _ratings_csv, "1,2,nan,5\n", "ratings.csv: line 2, column 3: rating nan is not a finite"),
    ("csv-rating-empty", _ratings_csv, "1,2,3,5\n\n1,3,,6\n", "ratings.csv: line 4, column 3: rating is empty"),
    ("csv-timestamp-fraction", _ratings_csv, "1,2,3,5.5\n", "ratings.csv: line 2, column 4: timestamp is not an int"),
    ("csv-timestamp-huge", _ratings_csv, "1,2,3,99999999999999999999\n", "line 2, column 4: timestamp"),
    ("csv-user-empty", _ratings_csv, ",2,3,5\n", "ratings.csv: line 2, column 1: userId is empty"),
    ("csv-fields-missing", _ratings_csv, "1,2,3,5\n1,2,3\n", "ratings.csv: line 3: expected 4 fields, got 3"),
]


@pytest.mark.parametrize("parse,text,words", [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_bad_field_is_refused_naming_file_line_and_column(parse, text, words):
    with pytest.raises(MovieLensFormatError) as info:
        parse(text)
    assert words in str(info.value)


def test_atomic_item_file_empty_id_is_refused():
    item = "item_id:token\ttitle:token_seq\n1\tA\n\tB\n"
    tables = {
        "inter": (parse_atomic_text(ATOMIC_HEADER + "1\t1\t3\t5\n", "/d/x.inter"), "/d/x.inter"),
        "item": (parse_atomic_text(item, "/d/x.item"), "/d/x.item"),
    }
    with pytest.raises(MovieLensFormatError, match=r"/d/x.item: line 3, column 1 \(item_id\): empty item id"):
        parse_atomic(tables, "x")


def test_atomic_age_nan_is_refused():
    user = "user_id:token\tage:float\n1\tnan\n"
    tables = {
        "inter": (parse_atomic_text(ATOMIC_HEADER + "1\t1\t3\t5\n", "/d/x.inter"), "/d/x.inter"),
        "user": (parse_atomic_text(user, "/d/x.user"), "/d/x.user"),
    }
    with pytest.raises(MovieLensFormatError, match=r"/d/x.user: line 2, column 2 \(age\)"):
        parse_atomic(tables, "x")


# ------------------------------------------------------------------------------------------ properties
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(rows=ROWS, data=st.data())
def test_ml100k_any_spoiled_field_is_named(rows, data):
    lineno = data.draw(st.integers(1, len(rows)), label="line")
    column = data.draw(st.integers(1, 4), label="column")
    value = data.draw(st.sampled_from(BAD_FLOAT if column == 3 else BAD_INT), label="value")
    text = _spoil(_inter_lines(rows, "\t"), lineno, column, value, "\t")
    with pytest.raises(MovieLensFormatError) as info:
        _ml100k(text)
    assert f"/d/u.data: line {lineno}, column {column}:" in str(info.value)


@PROPERTY
@given(rows=ROWS, data=st.data())
def test_ml1m_any_spoiled_field_is_named(rows, data):
    lineno = data.draw(st.integers(1, len(rows)), label="line")
    column = data.draw(st.integers(1, 4), label="column")
    value = data.draw(st.sampled_from(BAD_FLOAT if column == 3 else BAD_INT), label="value")
    text = _spoil(_inter_lines(rows, "::"), lineno, column, value, "::")
    with pytest.raises(MovieLensFormatError) as info:
        _ml1m(text)
    assert f"/d/ratings.dat: line {lineno}, column {column}:" in str(info.value)


@PROPERTY
@given(rows=ROWS, data=st.data())
def test_atomic_any_spoiled_field_is_named(rows, data):
    lineno = data.draw(st.integers(2, len(rows) + 1), label="line")
    column = data.draw(st.integers(1, 4), label="column")
    value = data.draw(st.sampled_from({1: [""], 2: [" "], 3: BAD_FLOAT, 4: BAD_TIMESTAMP_ATOMIC}[column]))
    text = _spoil(ATOMIC_HEADER + _inter_lines(rows, "\t"), lineno, column, value, "\t")
    with pytest.raises(MovieLensFormatError) as info:
        _atomic(text)
    name = ("user_id", "item_id", "rating", "timestamp")[column - 1]
    assert f"/d/x.inter: line {lineno}, column {column} ({name})" in str(info.value)


OBD_BAD = {
    "item_id": ["", "x", "nan", "inf", "1.5", "1e300", "-1", "99"],
    "position": ["", "x", "nan", "inf", "2.5", "1e300"],
    "click": ["", "x", "nan", "inf", "2", "-1", "0.5"],
    "propensity_score": ["", "x", "nan", "inf", "0", "-0.1", "1.5"],
    "timestamp": [""],
}


@PROPERTY
@given(data=st.data())
def test_open_bandit_any_spoiled_field_is_named(data):
    text = random_log_csv()
    lines = text.splitlines()
    header = lines[0].split(",")
    lineno = data.draw(st.integers(2, len(lines)), label="line")
    name = data.draw(st.sampled_from(sorted(OBD_BAD)), label="column")
    value = data.draw(st.sampled_from(OBD_BAD[name]), label="value")
    spoiled = _spoil(text, lineno, header.index(name) + 1, value, ",")
    with pytest.raises(OpenBanditFormatError) as info:
        parse_open_bandit(spoiled, item_context_csv(), behavior="random", campaign="all", where="/d/all.csv")
    message = str(info.value)
    assert message.startswith(f"/d/all.csv:{lineno}:") and name in message


BAD_CSV = {1: BAD_INT, 2: BAD_INT, 3: BAD_FLOAT, 4: BAD_INT}


@PROPERTY
@given(rows=ROWS, data=st.data())
def test_ratings_csv_any_spoiled_field_is_named(rows, data):
    """ml-20m / ml-25m's ratings.csv: Arrow reads it, and the error still names the line and the column."""
    row = data.draw(st.integers(1, len(rows)), label="row")
    column = data.draw(st.integers(1, 4), label="column")
    value = data.draw(st.sampled_from([v for v in BAD_CSV[column] if v.strip() == v or not v]), label="value")
    text = _spoil(_inter_lines(rows, ","), row, column, value, ",")
    with pytest.raises(MovieLensFormatError) as info:
        _ratings_csv(text)
    assert f"ratings.csv: line {row + 1}, column {column}:" in str(info.value), str(info.value)


TOKEN = st.one_of(
    st.integers(-(2**64), 2**64).map(str),
    st.sampled_from(["0", "00", "-0", "7", "007", "²", "١٢", "--5", "9223372036854775808", "-9223372036854775809"]),
    st.text(st.characters(blacklist_categories=("Z", "C")), min_size=1, max_size=6),
)


@PROPERTY
@given(lines=st.lists(st.tuples(TOKEN, TOKEN), min_size=1, max_size=8))
def test_a_sequence_file_keeps_every_id_as_written(lines):
    """Any token is an id, kept exactly (integers only where every id converts and back without change): no
    token is lost, merged with another or refused by a conversion."""
    data = _sequence("".join(f"{u} {i}\n" for u, i in lines))
    assert [str(data.raw_user_ids[u]) for u in data.user] == [u for u, _ in lines]
    assert [str(data.raw_item_ids[i]) for i in data.item] == [i for _, i in lines]


@PROPERTY
@given(lines=st.lists(st.tuples(TOKEN, TOKEN), min_size=1, max_size=8), data=st.data())
def test_a_sequence_line_of_the_wrong_width_is_named(lines, data):
    lineno = data.draw(st.integers(1, len(lines)), label="line")
    extra = data.draw(st.sampled_from(["", " 7"]), label="change")
    text = [f"{u} {i}" for u, i in lines]
    text[lineno - 1] = text[lineno - 1].split()[0] + extra + (" 8" if extra else "")
    with pytest.raises(MovieLensFormatError) as info:
        _sequence("\n".join(text) + "\n")
    assert f"/d/beauty.txt: line {lineno}: expected 2" in str(info.value), str(info.value)
