"""The item vocabulary: the raw ids a user owns (MovieID, a title, an ASIN) against the model's 0-based indices.

Every loader keeps its source's raw item ids (``MovieLens.raw_item_ids``); training writes them into the model's
checkpoint (metadata field ``item_vocabulary``), so a served model answers in the ids its users know:

    vocab = ItemVocabulary(data.raw_item_ids)
    vocab.indices(["B00X", "A11Y"])        # -> [1, 0]; an unknown raw id is a KeyError naming it
    vocab.raw([1, 0])                      # -> ["B00X", "A11Y"]

Integer raw ids stay integers and string ids strings (a JSON list either way).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["METADATA_FIELD", "ItemVocabulary"]

METADATA_FIELD = "item_vocabulary"
"""the checkpoint metadata field that holds the vocabulary (a JSON list of raw ids, index order)"""


class UnknownItemError(KeyError):
    """A raw item id the vocabulary does not hold; the message names it."""

    def __str__(self) -> str:  # KeyError would print the repr of the whole message
        return str(self.args[0]) if self.args else ""


class ItemVocabulary:
    """Raw item ids in index order: ``raw_ids[i]`` is the raw id of item index i. Raw ids must be distinct
    ints or strs (not bools, not a mix of both)."""

    def __init__(self, raw_ids: Sequence | np.ndarray):
        ids = [_plain(x) for x in (raw_ids.tolist() if isinstance(raw_ids, np.ndarray) else list(raw_ids))]
        kinds = {type(x) for x in ids}
        if not ids or not kinds <= {int} and not kinds <= {str}:
            found = sorted(k.__name__ for k in kinds) or ["nothing"]
            raise ValueError(f"raw_ids: expected a non-empty list of ints or of strs, got {', '.join(found)}")
        self._raw = ids
        self._index = {x: i for i, x in enumerate(ids)}
        if len(self._index) != len(ids):
            seen: set = set()
            dup = next(x for x in ids if x in seen or seen.add(x))
            raise ValueError(f"raw_ids: the raw id {dup!r} appears twice")

    def __len__(self) -> int:
        return len(self._raw)

    @property
    def raw_ids(self) -> list:
        return list(self._raw)

    def indices(self, raw: Iterable) -> list[int]:
        """The index of each raw id; UnknownItemError (a KeyError) naming the first raw id not in the vocabulary.
        A raw id of the other kind (the string "10" for integer ids) is unknown, never converted."""
        out = []
        for x in raw:
            try:
                out.append(self._index[_plain(x)])
            except (KeyError, TypeError):
                raise UnknownItemError(f"unknown raw item id {x!r} (not in the model's item vocabulary)") from None
        return out

    def raw(self, indices: Iterable[int]) -> list:
        """The raw id of each index (IndexError naming an index out of range)."""
        out = []
        for i in indices:
            i = int(i)
            if not 0 <= i < len(self._raw):
                raise IndexError(f"item index {i} out of range for a vocabulary of {len(self._raw)} items")
            out.append(self._raw[i])
        return out

    def to_json(self) -> str:
        return json.dumps(self._raw)

    @classmethod
    def from_json(cls, text: str, *, num_items: int | None = None) -> ItemVocabulary:
        """The vocabulary of `to_json`'s text; ValueError when it is not a list of distinct ints or strs, or when
        its length differs from `num_items` (the model's catalog)."""
        try:
            ids = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not JSON ({exc})") from None
        if not isinstance(ids, list):
            raise ValueError(f"expected a JSON list of raw ids, got {type(ids).__name__}")
        vocab = cls(ids)
        if num_items is not None and len(vocab) != num_items:
            raise ValueError(f"holds {len(vocab)} raw ids for a catalog of {num_items} items")
        return vocab


def _plain(x):
    """NumPy scalars to Python ints / strs; other values unchanged (bools stay bools, which are refused)."""
    return x.item() if isinstance(x, np.generic) else x
