"""recengine.serving.compiled_encoder: the AOT-compiled encoder answers as the eager one, and is cached."""

import threading

import pytest
import torch

from recengine.serving import compiled_encoder
from recengine.serving.recommender import Recommender


@pytest.fixture(scope="module")
def compiled_pair(model_dir, tmp_path_factory):
    """(eager, compiled) Recommenders of the shared model: int8 tables and bfloat16 compute, so one compile covers
    the dequantizing lookup and the bfloat16 matmuls."""
    cache = tmp_path_factory.mktemp("aoti")
    opts = {"dtype": "int8", "compute_dtype": "bfloat16"}
    return (
        Recommender.load(model_dir, **opts),
        Recommender.load(model_dir, **opts, compile=True, cache_dir=cache),
        cache,
    )


def _histories(n: int, seed: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(0, 20, (n,), generator=g).tolist()  # longer than max_len (8) too, and empty
    return [torch.randint(0, 300, (m,), generator=g).tolist() for m in lengths]


def test_compiled_states_equal_eager_states(compiled_pair):
    eager, compiled, _ = compiled_pair
    from recengine.serving.histories import context_windows, parse_histories

    for batch in (1, 3, 64):
        window, lengths, _ = context_windows(parse_histories(_histories(batch, batch), 300), eager.max_len)
        with torch.inference_mode():
            a = eager.encoder(window, lengths)
            b = compiled.compiled(window, lengths)
        assert b.shape == a.shape == (batch, eager.encoder.dim)
        # the same function; fused loops round differently (bfloat16 matmuls: a few 1e-3 relative)
        assert torch.allclose(a, b, atol=2e-2, rtol=2e-2), (a - b).abs().max()


def test_compiled_recommendations_match_eager(compiled_pair):
    eager, compiled, _ = compiled_pair
    hist = _histories(200, 7)
    a, b = eager.recommend(hist, k=10), compiled.recommend(hist, k=10)
    overlap = sum(len(set(x) & set(y)) for x, y in zip(a.items.tolist(), b.items.tolist())) / (200 * 10)
    assert overlap >= 0.98
    assert torch.equal(a.truncated, b.truncated)
    for row, h in zip(b.items.tolist(), hist):
        assert not set(row) & set(h)  # seen items stay excluded


def test_the_same_input_gives_the_same_answer_across_threads(compiled_pair):
    _, compiled, _ = compiled_pair
    hist = _histories(32, 3)
    expected = compiled.recommend(hist, k=5).items
    results, errors = [], []

    def worker():
        try:
            for _ in range(5):
                results.append(compiled.recommend(hist, k=5).items)
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 20 and all(torch.equal(r, expected) for r in results)


def test_a_second_load_reads_the_cached_package(compiled_pair, model_dir, monkeypatch):
    _, _, cache = compiled_pair
    assert len(list(cache.glob("encoder-*.pt2"))) == 1

    def no_compile(*args, **kwargs):
        raise AssertionError("compiled again although the package is cached")

    monkeypatch.setattr(torch._inductor, "aoti_compile_and_package", no_compile)
    again = Recommender.load(model_dir, dtype="int8", compute_dtype="bfloat16", compile=True, cache_dir=cache)
    assert again.compiled is not None


def test_the_cache_key_follows_weights_and_dtype(model_dir):
    a = Recommender.load(model_dir, dtype="int8").encoder
    b = Recommender.load(model_dir, dtype="int8").encoder
    c = Recommender.load(model_dir, dtype="float32").encoder
    d = Recommender.load(model_dir, dtype="int8", compute_dtype="bfloat16").encoder
    assert compiled_encoder.cache_key(a) == compiled_encoder.cache_key(b)
    assert len({compiled_encoder.cache_key(x) for x in (a, c, d)}) == 3
    with torch.no_grad():
        b.position_embedding[0, 0] += 1.0
    assert compiled_encoder.cache_key(a) != compiled_encoder.cache_key(b)
