"""Frozen text embeddings: the stand-in encoder, the safetensors cache and its invalidation, the missing extra."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from recengine.nn import text_encoder
from recengine.nn.text_encoder import (
    HashingTextEncoder,
    MiniLMEncoder,
    TextEncoder,
    TextExtraMissing,
    cache_path,
    cached_text_embeddings,
    texts_hash,
)


class CountingEncoder:
    """A stand-in that counts its calls (a cache hit must not call it)."""

    def __init__(self, model_id: str = "counting-4"):
        self.model_id, self.calls, self._inner = model_id, 0, HashingTextEncoder(4)

    def __call__(self, texts):
        self.calls += 1
        return self._inner(texts)


def test_stand_in_is_deterministic_and_unit_norm():
    enc = HashingTextEncoder(8)
    a, b = enc(["Toy Story", "Heat"]), HashingTextEncoder(8)(["Toy Story", "Heat"])
    assert torch.equal(a, b)
    torch.testing.assert_close(a.norm(dim=1), torch.ones(2))
    assert isinstance(enc, TextEncoder)


def test_stand_in_makes_texts_sharing_words_closer():
    v = HashingTextEncoder(64)(["toy story", "toy story two", "heat"])
    assert float(v[0] @ v[1]) > float(v[0] @ v[2])


def test_cache_is_read_back_without_calling_the_encoder(tmp_path):
    enc = CountingEncoder()
    first = cached_text_embeddings(["a b", "c d"], enc, str(tmp_path))
    second = cached_text_embeddings(["a b", "c d"], enc, str(tmp_path))
    assert enc.calls == 1
    assert torch.equal(first, second)


def test_cache_is_invalidated_when_the_texts_change(tmp_path):
    enc = CountingEncoder()
    cached_text_embeddings(["a b", "c d"], enc, str(tmp_path))
    changed = cached_text_embeddings(["a b", "c e"], enc, str(tmp_path))
    assert enc.calls == 2
    assert torch.equal(changed, HashingTextEncoder(4)(["a b", "c e"]))


def test_cache_is_invalidated_when_the_model_changes(tmp_path):
    cached_text_embeddings(["a b"], CountingEncoder("model-one"), str(tmp_path))
    other = CountingEncoder("model-two")
    cached_text_embeddings(["a b"], other, str(tmp_path))
    assert other.calls == 1


def test_a_cache_file_with_other_metadata_is_recomputed(tmp_path):
    from safetensors.torch import save_file

    texts = ["a b"]
    path = cache_path(str(tmp_path), "counting-4", texts_hash(texts))
    save_file({"embeddings": torch.zeros(1, 4)}, path, metadata={"model_id": "someone-else", "texts_sha256": "x"})
    enc = CountingEncoder()
    assert torch.equal(cached_text_embeddings(texts, enc, str(tmp_path)), HashingTextEncoder(4)(texts))
    assert enc.calls == 1


@pytest.mark.parametrize(
    "vectors",
    [
        torch.zeros(1),  # one row, but not (N, d)
        torch.zeros(1, 4, dtype=torch.float64),
        torch.full((1, 4), float("nan")),
        torch.zeros(2, 4),
    ],
    ids=["1-d", "float64", "nan", "other-rows"],
)
def test_a_damaged_cache_file_is_recomputed(tmp_path, vectors):
    from safetensors.torch import save_file

    texts = ["a b"]
    path = cache_path(str(tmp_path), "counting-4", texts_hash(texts))
    save_file({"embeddings": vectors}, path, metadata={"model_id": "counting-4", "texts_sha256": texts_hash(texts)})
    enc = CountingEncoder()
    assert torch.equal(cached_text_embeddings(texts, enc, str(tmp_path)), HashingTextEncoder(4)(texts))
    assert enc.calls == 1


def test_texts_hash_tells_apart_lists_with_the_same_concatenation():
    assert texts_hash(["ab", "c"]) != texts_hash(["a", "bc"])


def test_minilm_without_the_extra_raises_a_clear_error(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        text_encoder.importlib.util, "find_spec", lambda name, *a: None if name == "transformers" else real(name, *a)
    )
    with pytest.raises(TextExtraMissing, match=r"recengine\[text\]"):
        MiniLMEncoder()


@pytest.mark.parametrize(("texts", "error"), [("one string", TypeError), (["ok", 1], TypeError)])
def test_bad_texts_are_rejected(tmp_path, texts, error):
    with pytest.raises(error, match="texts"):
        cached_text_embeddings(texts, HashingTextEncoder(4), str(tmp_path))


@pytest.mark.parametrize("dim", [0, -1, True, 2.0])
def test_bad_stand_in_dim_is_rejected(dim):
    with pytest.raises(ValueError, match="dim"):
        HashingTextEncoder(dim)
