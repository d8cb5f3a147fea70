"""recengine.serving.http: the real server (uvicorn on 127.0.0.1, a free port) answers what the Python API answers,
under concurrent requests too; bad requests get a 4xx JSON naming the field and never disturb other answers."""

from __future__ import annotations

import http.client
import json
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

import pytest
import torch

from recengine.serving import Recommender
from recengine.serving.http import create_app
from recengine.serving.local_server import local_server
from tests.serving.conftest import NUM_ITEMS

pytest.importorskip("fastapi")


@pytest.fixture(scope="module")
def rec(model_dir):
    return Recommender.load(model_dir)


@pytest.fixture(scope="module")
def server(rec):
    with local_server(create_app(recommender=rec, max_batch=64, max_wait_ms=2.0)) as url:
        yield urlparse(url)


def call(server, method: str, path: str, body: object | None = None, raw: bytes | None = None):
    conn = http.client.HTTPConnection(server.hostname, server.port, timeout=30)
    try:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def test_health(server):
    status, body = call(server, "GET", "/health")
    assert status == 200 and body["status"] == "ok" and body["num_items"] == NUM_ITEMS


def test_recommend_equals_the_python_api(server, rec):
    status, body = call(server, "POST", "/recommend", {"history": [3, 9, 27], "k": 5})
    items, scores = rec.recommend([[3, 9, 27]], k=5)
    assert status == 200
    assert body["items"] == items[0].tolist() and body["truncated"] is False
    assert body["scores"] == pytest.approx(scores[0].tolist(), abs=1e-6)


def test_batch_form_and_truncation(server, rec):
    histories = [[1, 2], list(range(50, 80)), []]
    status, body = call(server, "POST", "/recommend/batch", {"histories": histories, "k": 4})
    expected = rec.recommend(histories, k=4)
    assert status == 200
    assert [r["items"] for r in body["results"]] == expected.items.tolist()
    assert [r["truncated"] for r in body["results"]] == [False, True, False]


def test_concurrent_requests_each_get_their_own_answer(server, rec):
    gen = torch.Generator().manual_seed(2)
    requests = [
        {"history": torch.randint(0, NUM_ITEMS, (int(n),), generator=gen).tolist(), "k": int(k)}
        for n, k in zip(torch.randint(0, 12, (96,), generator=gen), torch.randint(1, 20, (96,), generator=gen))
    ]
    requests[7] = {"history": [NUM_ITEMS + 5], "k": 3}  # a bad one in the middle of the traffic
    with ThreadPoolExecutor(max_workers=16) as pool:
        replies = list(pool.map(lambda r: call(server, "POST", "/recommend", r), requests))
    for i, (req, (status, body)) in enumerate(zip(requests, replies)):
        if i == 7:
            assert status == 422 and body["field"] == "history.0"
            continue
        items, _ = rec.recommend([req["history"]], k=req["k"])
        assert status == 200 and body["items"] == items[0].tolist()


@pytest.mark.parametrize(
    "body,raw,field",
    [
        ({"history": [1, -2], "k": 3}, None, "history.1"),
        ({"history": [1, NUM_ITEMS], "k": 3}, None, "history.1"),
        ({"history": [1], "k": 0}, None, "k"),
        ({"history": [1], "k": NUM_ITEMS + 1}, None, "k"),
        ({"history": [1], "k": NUM_ITEMS}, None, "k"),  # more than the unseen items
        ({"history": [1], "k": "10"}, None, "k"),
        ({"history": [1.5], "k": 3}, None, "history.0"),
        ({"history": "1,2", "k": 3}, None, "history"),
        ({"k": 3}, None, "history"),
        ({"history": [1], "k": 3, "exclude_seen": "yes"}, None, "exclude_seen"),
        (None, b"{not json", "body"),
        ({"histories": [], "k": 3}, None, "histories"),
    ],
)
def test_bad_requests_get_a_4xx_naming_the_field(server, body, raw, field):
    path = "/recommend/batch" if body is not None and "histories" in body else "/recommend"
    status, reply = call(server, "POST", path, body, raw)
    assert 400 <= status < 500
    assert reply["field"] == field and field.split(".")[0] in reply["error"]


def test_server_still_answers_after_bad_requests(server, rec):
    call(server, "POST", "/recommend", raw=b"\xff\xfe")
    status, body = call(server, "POST", "/recommend", {"history": [10], "k": 2})
    assert status == 200 and body["items"] == rec.recommend([[10]], k=2).items[0].tolist()


def test_a_checkpoint_loads_with_the_chosen_tables_arithmetic_and_compilation(model_dir, monkeypatch):
    seen = {}
    real_load = Recommender.load

    def load(checkpoint, **kwargs):
        seen.update(kwargs)
        return real_load(checkpoint, dtype=kwargs["dtype"])  # the options reach the loader; no compile here

    monkeypatch.setattr(Recommender, "load", staticmethod(load))
    app = create_app(model_dir, dtype="int8", compile=True, compute_dtype="bfloat16")
    with local_server(app) as url:
        status, body = call(urlparse(url), "GET", "/health")
    assert status == 200 and body["dtype"] == "int8"
    assert seen == {"dtype": "int8", "compile": True, "compute_dtype": "bfloat16"}


@pytest.fixture(scope="module")
def raw_server(tmp_path_factory):
    """A model whose checkpoint carries string item ids ("sku-<index>")."""
    from recengine.data import make_synthetic
    from recengine.train import SASRecConfig, model_from_data, sasrec_checkpoint

    cfg = SASRecConfig(dim=16, max_len=8, num_layers=1, num_heads=2)
    torch.manual_seed(0)
    model = model_from_data(make_synthetic(30, 50, seed=0), cfg).eval()
    out = tmp_path_factory.mktemp("raw_http")
    ids = [f"sku-{i}" for i in range(50)]
    sasrec_checkpoint.save_model(str(out / "model.safetensors"), model, cfg, "synthetic", item_ids=ids)
    rec = Recommender.load(out)
    with local_server(create_app(recommender=rec, max_batch=16, max_wait_ms=1.0)) as url:
        yield urlparse(url), rec


def test_raw_ids_in_and_out(raw_server):
    server, rec = raw_server
    status, body = call(server, "POST", "/recommend", {"history": ["sku-3", "sku-9"], "k": 4, "ids": "raw"})
    expected = rec.recommend([[3, 9]], k=4)
    assert status == 200 and body["items"] == [f"sku-{i}" for i in expected.items[0].tolist()]
    status, body = call(server, "POST", "/recommend/batch", {"histories": [["sku-1"], []], "k": 2, "ids": "raw"})
    assert status == 200 and all(x.startswith("sku-") for r in body["results"] for x in r["items"])
    assert call(server, "GET", "/health")[1]["vocabulary"] is True


@pytest.mark.parametrize(
    "body, field, words",
    [
        ({"history": ["sku-3", "nope"], "ids": "raw"}, "history", "unknown raw item id 'nope'"),
        ({"history": ["sku-3"]}, "history.0", "is not an item index"),
        ({"history": [1], "ids": "title"}, "ids", ""),
    ],
)
def test_bad_raw_requests_name_the_field(raw_server, body, field, words):
    status, answer = call(raw_server[0], "POST", "/recommend", body)
    assert status == 422 and answer["field"] == field and words in answer["error"]


def test_raw_ids_need_a_vocabulary(server):
    status, body = call(server, "POST", "/recommend", {"history": [1], "ids": "raw"})
    assert status == 422 and body["field"] == "ids" and "vocabulary" in body["error"]
