"""ml-20m / ml-25m in GroupLens's CSV layout, on small fixtures in the real file format, and bad files named."""

import pytest

pytest.importorskip("pyarrow")

from recengine.data import load_movielens  # noqa: E402
from recengine.data.dataset import MovieLensFormatError, year_bucket  # noqa: E402
from recengine.data.grouplens import CHECKSUMS  # noqa: E402

RATINGS = "userId,movieId,rating,timestamp\n1,2,3.5,1112486027\n1,29,3.5,1112484676\n7,2,4.0,1094785740\n"
MOVIES = (
    "movieId,title,genres\n"
    "2,Jumanji (1995),Adventure|Children|Fantasy\n"
    '29,"City of Lost Children, The (Cité des enfants perdus, La) (1995)",Adventure|Drama|Fantasy|Mystery|Sci-Fi\n'
    "131262,Innocence (2014),(no genres listed)\n"
)


def write(d, ratings=RATINGS, movies=MOVIES):
    d.mkdir(parents=True, exist_ok=True)
    (d / "ratings.csv").write_text(ratings, encoding="utf-8")
    (d / "movies.csv").write_text(movies, encoding="utf-8")


@pytest.mark.parametrize("name", ["ml-20m", "ml-25m"])
def test_csv_layout(tmp_path, name):
    write(tmp_path / name)
    data = load_movielens(name, root=str(tmp_path), download=False)
    assert (data.name, data.num_users, data.num_items, data.num_interactions) == (name, 2, 3, 3)
    assert data.raw_item_ids.tolist() == [2, 29, 131262] and data.raw_user_ids.tolist() == [1, 7]
    assert data.item.tolist() == [0, 1, 0] and data.user.tolist() == [0, 0, 1]
    assert data.rating.tolist() == [3.5, 3.5, 4.0] and data.timestamp[1] == 1112484676
    assert data.item_titles[1].startswith("City of Lost Children, The")
    offsets, ids = data.item_features["genre_offsets"], data.item_features["genre_ids"]
    assert [data.genre_names[g] for g in ids[offsets[1] : offsets[2]]] == [
        "Adventure",
        "Drama",
        "Fantasy",
        "Mystery",
        "Sci-Fi",
    ]
    assert offsets[3] == offsets[2]  # "(no genres listed)" is no genre
    assert data.item_features["year"].tolist() == [year_bucket(1995), year_bucket(1995), year_bucket(2014)]
    assert data.user_features == {}
    assert CHECKSUMS[name][0] == "md5" and len(CHECKSUMS[name][1]) == 32


@pytest.mark.parametrize(
    "ratings, movies, match",
    [
        ("userId,movieId,rating\n1,2,3\n", MOVIES, "ratings.csv"),
        ("userId,movieId,rating,timestamp\n1,2,x,5\n", MOVIES, "ratings.csv"),
        ("userId,movieId,rating,timestamp\n1,2,nan,5\n", MOVIES, "line 2, column 3: rating nan is not a finite"),
        ("userId,movieId,rating,timestamp\n1,2,,5\n", MOVIES, "line 2, column 3: rating is empty"),
        ("userId,movieId,rating,timestamp\n1,2,inf,5\n", MOVIES, "finite"),
        ("userId,movieId,rating,timestamp\n", MOVIES, "no data rows"),
        ("userId,movieId,rating,timestamp\n1,99,3,5\n", MOVIES, "movieId missing"),
        (RATINGS, "id,title,genres\n2,J,A\n", r"movies.csv: header"),
        (RATINGS, "movieId,title,genres\nx,J,A\n", r"movies.csv: line 2"),
    ],
)
def test_bad_files_are_named(tmp_path, ratings, movies, match):
    write(tmp_path, ratings, movies)
    with pytest.raises(MovieLensFormatError, match=match):
        load_movielens("ml-20m", root=str(tmp_path), download=False)


def test_half_a_layout_is_an_error(tmp_path):
    (tmp_path / "ratings.csv").write_text(RATINGS)
    with pytest.raises(FileNotFoundError, match="movies.csv"):
        load_movielens("ml-25m", root=str(tmp_path), download=False)
