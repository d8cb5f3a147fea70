"""ItemVocabulary: raw ids to indices and back, bad vocabularies and unknown ids named."""

import numpy as np
import pytest

from recengine.data.vocabulary import ItemVocabulary


def test_round_trip_for_int_and_str_ids():
    for raw in (np.array([10, 3, 7]), ["B00X", "A11Y", "C"]):
        vocab = ItemVocabulary(raw)
        assert vocab.raw(vocab.indices(list(raw))) == list(raw)
        assert ItemVocabulary.from_json(vocab.to_json(), num_items=3).raw_ids == vocab.raw_ids
    assert ItemVocabulary([10, 3, 7]).indices([np.int64(7), 10]) == [2, 0]


@pytest.mark.parametrize(
    "raw, match",
    [
        ([], "non-empty"),
        ([1, "a"], "ints or of strs"),
        ([True, False], "ints or of strs"),
        ([1.5], "float"),
        ([3, 3], "appears twice"),
        (["a", "b", "a"], "'a' appears twice"),
    ],
)
def test_bad_vocabularies_are_refused(raw, match):
    with pytest.raises(ValueError, match=match):
        ItemVocabulary(raw)


def test_unknown_and_out_of_range_are_named():
    vocab = ItemVocabulary([10, 3, 7])
    with pytest.raises(KeyError, match="unknown raw item id '10'"):  # a str is not the int 10
        vocab.indices(["10"])
    with pytest.raises(KeyError, match="unknown raw item id 11"):
        vocab.indices([11])
    with pytest.raises(IndexError, match="item index 3 out of range"):
        vocab.raw([3])
    with pytest.raises(ValueError, match="holds 3 raw ids for a catalog of 4"):
        ItemVocabulary.from_json(vocab.to_json(), num_items=4)
    with pytest.raises(ValueError, match="not JSON"):
        ItemVocabulary.from_json("[1,", num_items=1)
    with pytest.raises(ValueError, match="JSON list"):
        ItemVocabulary.from_json('{"a": 1}')
