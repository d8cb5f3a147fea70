"""recengine.serving.recommender: answers equal the trained model's own scoring, in every input form, from many
threads at once; truncation is reported; bad input is refused naming the argument."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from recengine.checkpoint import CheckpointError
from recengine.padding import PAD_ID
from recengine.serving import Recommender
from recengine.train.sasrec_checkpoint import load_model
from tests.serving.conftest import NUM_ITEMS

HISTORIES = [[1, 2, 3, 50], [7], [], list(range(20, 40)), [299, 0, 299]]


@pytest.fixture(scope="module")
def rec(model_dir):
    return Recommender.load(model_dir)


def _model_topk(model_dir, histories, k, users=None):
    """The trained model's own answer: user_states over a padded window, the head's top-k, history excluded."""
    model, _ = load_model(str(model_dir / "model.safetensors"))
    model.eval()
    width = max(len(h) for h in histories)
    window = torch.full((len(histories), width), PAD_ID)
    for b, h in enumerate(histories):
        window[b, : len(h)] = torch.tensor(h, dtype=torch.int64)
    states = model.user_states(window, users)
    lengths = torch.tensor([len(h) for h in histories])
    offsets = torch.cat([torch.zeros(1, dtype=torch.int64), lengths.cumsum(0)])
    seen = torch.tensor([i for h in histories for i in h], dtype=torch.int64)
    with torch.no_grad():
        return model.head.topk(states, k, model.encoder.item_embeddings(), exclude_offsets=offsets, exclude_ids=seen)


def test_float32_answers_equal_the_trained_model(rec, model_dir):
    items, scores = rec.recommend(HISTORIES, k=10)
    ref_scores, ref_items = _model_topk(model_dir, HISTORIES, 10)
    assert torch.equal(items, ref_items)
    assert torch.allclose(scores, ref_scores, atol=1e-5)


def test_user_features_reach_the_encoder(rec, model_dir):
    users = torch.tensor([0, 1, 2, 3, 4])
    items, scores = rec.recommend(HISTORIES, k=10, user_features=users)
    ref_scores, ref_items = _model_topk(model_dir, HISTORIES, 10, users)
    assert torch.equal(items, ref_items)


def test_values_offsets_form_gives_the_same_answer(rec):
    values = torch.tensor([i for h in HISTORIES for i in h])
    offsets = torch.tensor([0, 4, 5, 5, 25, 28])
    a = rec.recommend(HISTORIES, k=7)
    b = rec.recommend((values, offsets), k=7)
    assert torch.equal(a.items, b.items) and torch.equal(a.scores, b.scores)


def test_seen_items_excluded_unless_asked(rec):
    items, _ = rec.recommend(HISTORIES, k=50)
    for row, h in zip(items.tolist(), HISTORIES):
        assert not set(row) & set(h)
    kept, _ = rec.recommend([[5]], k=NUM_ITEMS, exclude_seen=False)
    assert 5 in kept[0].tolist()


def test_long_history_cut_to_the_most_recent_items_and_reported(rec):
    long = list(range(100, 130))  # 30 items > max_len 8
    out = rec.recommend([long, [1, 2]], k=5, exclude_seen=False)
    recent = rec.recommend([long[-8:], [1, 2]], k=5, exclude_seen=False)
    assert out.truncated.tolist() == [True, False]
    assert torch.equal(out.items, recent.items)


def test_threads_share_one_recommender(rec):
    gen = torch.Generator().manual_seed(5)
    batches = [
        [
            torch.randint(0, NUM_ITEMS, (int(n),), generator=gen).tolist()
            for n in torch.randint(0, 15, (int(b),), generator=gen)
        ]
        for b in torch.randint(1, 20, (24,), generator=gen)
    ]
    sequential = [rec.recommend(b, k=10) for b in batches]
    with ThreadPoolExecutor(max_workers=8) as pool:
        concurrent = list(pool.map(lambda b: rec.recommend(b, k=10), batches))
    for s, c in zip(sequential, concurrent):
        assert torch.equal(s.items, c.items) and torch.equal(s.scores, c.scores)


@pytest.mark.parametrize("dtype", ["bfloat16", "int8"])
def test_inference_tables_agree_with_float32(model_dir, rec, dtype):
    low = Recommender.load(model_dir, dtype=dtype)
    assert low.encoder.table.nbytes() < rec.encoder.table.nbytes()
    a, _ = rec.recommend(HISTORIES, k=10)
    b, _ = low.recommend(HISTORIES, k=10)
    overlap = sum(len(set(x) & set(y)) for x, y in zip(a.tolist(), b.tolist())) / a.numel()
    assert overlap >= 0.8


def test_loads_a_model_file_and_a_training_checkpoint_name(model_dir, rec):
    direct = Recommender.load(model_dir / "model.safetensors")
    assert torch.equal(direct.recommend(HISTORIES).items, rec.recommend(HISTORIES).items)


def test_missing_checkpoint_names_the_path(tmp_path):
    with pytest.raises(CheckpointError, match="model.safetensors"):
        Recommender.load(tmp_path)


@pytest.mark.parametrize(
    "histories,k,kw,exc,match",
    [
        ([[1, NUM_ITEMS]], 10, {}, IndexError, r"histories\[0\].*300"),
        ([[3], [-1]], 10, {}, IndexError, r"histories\[1\].*-1"),
        ([[1.5]], 10, {}, TypeError, "histories"),
        ([[True]], 10, {}, TypeError, "histories"),
        ([5], 10, {}, TypeError, r"histories\[0\]"),
        ("abc", 10, {}, TypeError, "histories"),
        ([], 10, {}, ValueError, "histories"),
        ([[1]] * 4097, 10, {}, ValueError, "histories"),
        ([[1]], 0, {}, ValueError, "k"),
        ([[1]], NUM_ITEMS + 1, {}, ValueError, "k"),
        ([[1]], 2.0, {}, TypeError, "k"),
        ([[1]], NUM_ITEMS, {}, ValueError, "k"),
        ([[1]], 3, {"user_features": [0, 1]}, TypeError, "user_features"),
    ],
)
def test_bad_input_raises_naming_the_argument(rec, histories, k, kw, exc, match):
    with pytest.raises(exc, match=match):
        rec.recommend(histories, k, **kw)


def test_unknown_dtype_is_refused(model_dir):
    with pytest.raises(ValueError, match="dtype"):
        Recommender.load(model_dir, dtype="int4")


@pytest.fixture(scope="module")
def raw_dir(tmp_path_factory):
    """The conftest model saved with an item vocabulary of string ids ("sku-<index * 3>")."""
    from recengine.data import make_synthetic
    from recengine.train import SASRecConfig, model_from_data, sasrec_checkpoint

    cfg = SASRecConfig(dim=16, max_len=8, num_layers=1, num_heads=2)
    torch.manual_seed(0)
    model = model_from_data(make_synthetic(40, 300, seed=0), cfg).eval()
    out = tmp_path_factory.mktemp("raw")
    ids = [f"sku-{3 * i}" for i in range(300)]
    sasrec_checkpoint.save_model(str(out / "model.safetensors"), model, cfg, "synthetic", item_ids=ids)
    return out


def test_raw_ids_in_and_out_match_the_indices(raw_dir):
    rec = Recommender.load(raw_dir)
    assert rec.vocabulary is not None and len(rec.vocabulary) == 300
    by_index = rec.recommend([[4, 9, 1], [7]], k=5)
    by_raw = rec.recommend([["sku-12", "sku-27", "sku-3"], ["sku-21"]], k=5, ids="raw")
    assert by_raw.items == [[f"sku-{3 * i}" for i in row] for row in by_index.items.tolist()]
    torch.testing.assert_close(by_raw.scores, by_index.scores)


def test_raw_id_errors_name_the_id_or_the_missing_vocabulary(raw_dir, rec):
    raw = Recommender.load(raw_dir)
    with pytest.raises(KeyError, match="unknown raw item id 'sku-1'"):
        raw.recommend([["sku-3", "sku-1"]], ids="raw")
    with pytest.raises(TypeError, match=r"histories\[0\]"):
        raw.recommend(["sku-3"], ids="raw")
    with pytest.raises(ValueError, match="ids: expected 'index' or 'raw'"):
        raw.recommend([[1]], ids="title")
    with pytest.raises(ValueError, match="without one"):  # the conftest model has no vocabulary
        rec.recommend([[1]], ids="raw")


def test_a_vocabulary_that_does_not_fit_the_catalog_is_refused(raw_dir, tmp_path):
    from recengine.checkpoint import CheckpointError, read, write

    tensors, meta = read(str(raw_dir / "model.safetensors"))
    meta = {**meta, "item_vocabulary": '["a", "b"]'}
    write(str(tmp_path / "model.safetensors"), tensors, meta["kind"], {k: v for k, v in meta.items() if k != "kind"})
    with pytest.raises(CheckpointError, match="item_vocabulary.*2 raw ids for a catalog of 300"):
        Recommender.load(tmp_path)
