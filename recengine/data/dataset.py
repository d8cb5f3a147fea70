"""The in-memory dataset every loader returns (``MovieLens``, named after the first source; any interaction log
fits it) and the feature buckets the loaders share.

Users and items get contiguous 0-based ids; the raw ids of the source (MovieID, a title, an ASIN, any hashable)
are kept in ``raw_user_ids`` / ``raw_item_ids`` so results map back to them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "AGE_EDGES",
    "ML100K_GENRES",
    "NUM_YEAR_BUCKETS",
    "YEAR_IN_TITLE",
    "YEAR_EDGES",
    "MovieLens",
    "MovieLensFormatError",
    "age_bucket",
    "year_bucket",
]

#: the 19 genres of ml-100k in the column order of u.item (genre ids are indices into this list)
ML100K_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
#: age buckets (the MovieLens-1M convention): <18, 18-24, 25-34, 35-44, 45-49, 50-55, 56+
AGE_EDGES = (18, 25, 35, 45, 50, 56)
#: release-year buckets; bucket 0 means "year unknown", bucket i (i >= 1) is [YEAR_EDGES[i-2], YEAR_EDGES[i-1])
YEAR_EDGES = (1950, 1960, 1970, 1980, 1990, 1993, 1995, 1996, 1997, 1998)
NUM_YEAR_BUCKETS = len(YEAR_EDGES) + 2
YEAR_IN_TITLE = re.compile(r"\((\d{4})\)\s*$")
"""a MovieLens title's release year, "Heat (1995)" -> 1995"""


@dataclass
class MovieLens:
    """Interactions and features with contiguous 0-based ids (users 0..num_users-1, items 0..num_items-1).

    Interaction arrays are parallel, one entry per rating, in file order: ``user``, ``item`` (int64),
    ``rating`` (float32), ``timestamp`` (int64, seconds).

    ``user_features``: name -> (num_users,) int64 category ids, sizes in ``user_feature_sizes``
    (ml-100k: "age" bucket, "gender", "occupation").
    ``item_features``: "year" -> (num_items,) int64 bucket (0 = unknown); the genres as CSR,
    "genre_offsets" (num_items+1,) int64 and "genre_ids" int64 (an item may have none);
    sizes in ``item_feature_sizes`` ("year", "genre").
    """

    name: str
    user: np.ndarray
    item: np.ndarray
    rating: np.ndarray
    timestamp: np.ndarray
    num_users: int
    num_items: int
    user_features: dict[str, np.ndarray] = field(default_factory=dict)
    user_feature_sizes: dict[str, int] = field(default_factory=dict)
    item_features: dict[str, np.ndarray] = field(default_factory=dict)
    item_feature_sizes: dict[str, int] = field(default_factory=dict)
    item_titles: list[str] = field(default_factory=list)
    genre_names: tuple[str, ...] = ML100K_GENRES
    #: original ids, so results can be mapped back (raw_user_ids[u] is the file's id of user u)
    raw_user_ids: np.ndarray | None = None
    raw_item_ids: np.ndarray | None = None
    #: anything else a source knows (the synthetic generator puts its "user_latent" and "item_latent" here)
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def num_interactions(self) -> int:
        return int(self.user.shape[0])


class MovieLensFormatError(ValueError):
    """A data file exists but cannot be parsed; the message names the file and the line."""


# ------------------------------------------------------------------------------------------ buckets
def age_bucket(age: int) -> int:
    return int(np.searchsorted(AGE_EDGES, age, side="right"))


def year_bucket(year: int | None) -> int:
    if year is None:
        return 0
    return 1 + int(np.searchsorted(YEAR_EDGES, year, side="right"))
