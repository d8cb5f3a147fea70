"""Item text as TF-IDF bags: tokeniser, vocabulary, weights against the written-out formula (and scikit-learn's
TfidfVectorizer when it is installed)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from recengine.data.item_text import build_vocabulary, item_texts, item_tfidf_bags, tfidf_bags, tokenize

CORPUS = ["Toy Story", "Toy Story 2", "The Story of Us", "Heat", "The Heat (1995)"]


def test_tokenize_lowercases_and_drops_one_character_tokens():
    assert tokenize("Star Wars: Episode I, a New Hope") == ["star", "wars", "episode", "new", "hope"]


def test_tokenize_strips_a_trailing_year():
    assert tokenize("Heat (1995)") == ["heat"]
    assert tokenize("Heat (1995)", strip_year=False) == ["heat", "1995"]


def test_vocabulary_keeps_tokens_in_at_least_min_count_documents_sorted():
    tokens = [tokenize(t) for t in CORPUS]
    assert build_vocabulary(tokens, 2) == ("heat", "story", "the", "toy")
    assert build_vocabulary([["a", "a"], ["b"]], 2) == ()  # a count within one document is not a document count


def test_tfidf_matches_the_written_out_formula():
    bags = tfidf_bags(CORPUS, min_count=2)
    n = len(CORPUS)
    df = {"heat": 2, "story": 3, "the": 2, "toy": 2}
    idf = {t: math.log((1 + n) / (1 + d)) + 1 for t, d in df.items()}
    expected = np.zeros((n, 4))
    for i, text in enumerate(CORPUS):
        for t in tokenize(text):
            if t in df:
                expected[i, bags.vocabulary.index(t)] += idf[t]
        norm = np.linalg.norm(expected[i])
        expected[i] /= norm if norm else 1.0
    np.testing.assert_allclose(bags.dense(), expected, rtol=1e-6)
    np.testing.assert_allclose(bags.idf, [idf[t] for t in bags.vocabulary])


def test_tfidf_counts_a_repeated_token_in_its_term_frequency():
    bags = tfidf_bags(["go go away", "go away", "stay"], min_count=1)
    dense = bags.dense()
    go, away = bags.vocabulary.index("go"), bags.vocabulary.index("away")
    # both in 2 of 3 documents (same idf), so the weights keep the 2:1 count ratio
    assert dense[0, go] == pytest.approx(2 * dense[0, away])


def test_item_without_known_token_gets_an_empty_bag():
    bags = tfidf_bags(["Toy Story", "Toy Story 2", "Heat"], min_count=2)
    assert bags.offsets[3] - bags.offsets[2] == 0
    assert bags.num_items == 3


def test_tfidf_matches_scikit_learn_when_installed():
    text = pytest.importorskip("sklearn.feature_extraction.text")
    vectorizer = text.TfidfVectorizer(min_df=2)
    reference = vectorizer.fit_transform([t for t in CORPUS]).toarray()
    ours = tfidf_bags(CORPUS, min_count=2, strip_year=False)
    assert tuple(vectorizer.get_feature_names_out()) == ours.vocabulary
    np.testing.assert_allclose(ours.dense(), reference, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    ("texts", "min_count", "error"),
    [
        ("one string", 1, TypeError),
        (["ok", 3], 1, TypeError),
        (["ok"], 0, ValueError),
        (["ok"], True, ValueError),
    ],
)
def test_bad_input_is_rejected(texts, min_count, error):
    with pytest.raises(error, match="texts|min_count"):
        tfidf_bags(texts, min_count)


def test_item_texts_names_a_missing_title_list():
    data = SimpleNamespace(name="toy", num_items=3, item_titles=["a", "b"])
    with pytest.raises(ValueError, match="item_titles"):
        item_texts(data)


def test_item_tfidf_bags_has_one_bag_per_item():
    data = SimpleNamespace(name="toy", num_items=len(CORPUS), item_titles=list(CORPUS))
    assert item_tfidf_bags(data).num_items == len(CORPUS)
