"""Item text as a weighted bag of words: tokeniser, vocabulary and TF-IDF bags for the embedding_bag op.

Every item's text (ml-100k: its title) becomes a bag of vocabulary ids with one TF-IDF weight per id, in the
jagged CSR layout the fused ``embedding_bag`` op reads (``offsets`` (N+1,), ``ids``, ``weights``). The model
pools learned token embeddings with these weights as per-sample weights (sum pooling), so an item never seen
in training still gets a vector from the words it shares with seen items.

The formula is scikit-learn's ``TfidfVectorizer`` with its defaults (so the two agree, see the tests):

* tokens: the text lower-cased, runs of two or more word characters (``(?u)\\b\\w\\w+\\b``);
* vocabulary: tokens that occur in at least ``min_count`` items (document frequency), sorted, ids 0..V-1;
* weight of token t in item d: ``tf(t, d) * idf(t)`` with tf the raw count and the smooth
  ``idf(t) = ln((1 + n) / (1 + df(t))) + 1`` (n items), then each item's weights are l2-normalised.

A trailing release year in parentheses (``"Toy Story (1995)"``) is removed before tokenising: the year is
already an item feature (the year bucket), and a year token would mostly add near-unique words.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

TOKEN_PATTERN = re.compile(r"(?u)\b\w\w+\b")
"""scikit-learn's default token pattern: runs of two or more word characters"""
TRAILING_YEAR = re.compile(r"\s*\(\d{4}\)\s*$")
"""a release year in parentheses at the end of a title"""
DEFAULT_MIN_COUNT = 2
"""a token must occur in at least this many items to enter the vocabulary"""


def tokenize(text: str, *, strip_year: bool = True) -> list[str]:
    """The lower-cased tokens of `text` (runs of >= 2 word characters), a trailing "(YYYY)" removed first."""
    if not isinstance(text, str):
        raise TypeError(f"text: expected a str, got {type(text).__name__}")
    if strip_year:
        text = TRAILING_YEAR.sub("", text)
    return TOKEN_PATTERN.findall(text.lower())


@dataclass(frozen=True)
class TextBags:
    """Every item's TF-IDF bag over `vocabulary`, as CSR: item i holds ``ids[offsets[i]:offsets[i+1]]`` with
    ``weights`` alongside (float32, l2 norm 1 per non-empty item; an item with no known token has an empty bag)."""

    vocabulary: tuple[str, ...]
    offsets: np.ndarray
    ids: np.ndarray
    weights: np.ndarray
    idf: np.ndarray
    """(V,) float64, the smooth idf of each vocabulary token"""

    @property
    def num_items(self) -> int:
        return int(self.offsets.shape[0] - 1)

    def dense(self) -> np.ndarray:
        """(N, V) float32 matrix of the weights (for inspection and tests; the model reads the CSR form)."""
        out = np.zeros((self.num_items, len(self.vocabulary)), dtype=np.float32)
        rows = np.repeat(np.arange(self.num_items), np.diff(self.offsets))
        out[rows, self.ids] = self.weights
        return out


def build_vocabulary(token_lists: Sequence[Sequence[str]], min_count: int = DEFAULT_MIN_COUNT) -> tuple[str, ...]:
    """The tokens that occur in at least `min_count` of the documents, sorted (id = position)."""
    if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
        raise ValueError(f"min_count: expected an int >= 1, got {min_count!r}")
    document_frequency = Counter(t for tokens in token_lists for t in set(tokens))
    return tuple(sorted(t for t, c in document_frequency.items() if c >= min_count))


def tfidf_bags(texts: Sequence[str], min_count: int = DEFAULT_MIN_COUNT, *, strip_year: bool = True) -> TextBags:
    """TF-IDF bags of `texts` (one per item), the vocabulary built from the same texts (see the module doc)."""
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise TypeError("texts: expected a sequence of str, one per item")
    token_lists = [tokenize(t, strip_year=strip_year) for t in texts]
    vocabulary = build_vocabulary(token_lists, min_count)
    index = {t: i for i, t in enumerate(vocabulary)}
    n = len(token_lists)
    df = np.zeros(len(vocabulary), dtype=np.float64)
    counts = [Counter(index[t] for t in tokens if t in index) for tokens in token_lists]
    for c in counts:
        df[list(c)] += 1
    idf = np.log((1.0 + n) / (1.0 + df)) + 1.0
    offsets = np.zeros(n + 1, dtype=np.int64)
    ids, weights = [], []
    for i, c in enumerate(counts):
        row_ids = np.array(sorted(c), dtype=np.int64)
        row = np.array([c[t] for t in row_ids], dtype=np.float64) * idf[row_ids]
        norm = np.linalg.norm(row)
        ids.append(row_ids)
        weights.append(row / norm if norm > 0 else row)
        offsets[i + 1] = offsets[i] + row_ids.size
    return TextBags(
        vocabulary,
        offsets,
        np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64),
        np.concatenate(weights).astype(np.float32) if weights else np.zeros(0, dtype=np.float32),
        idf,
    )


def item_texts(data) -> list[str]:
    """The text of every item of a MovieLens-like dataset (its titles), one per item id; a clear error when the
    dataset has none."""
    titles = list(getattr(data, "item_titles", None) or [])
    if len(titles) != data.num_items:
        raise ValueError(
            f"item_titles: the dataset {getattr(data, 'name', '')!r} has {len(titles)} titles for "
            f"{data.num_items} items; item text features need one per item"
        )
    return titles


def item_tfidf_bags(data, min_count: int = DEFAULT_MIN_COUNT) -> TextBags:
    """TF-IDF bags of every item's title of a MovieLens-like dataset."""
    return tfidf_bags(item_texts(data), min_count)
