"""recengine.bench.http_load: the load generator's replies are the server's answers, one per request, in order."""

import asyncio
import json
from urllib.parse import urlparse

import pytest

from recengine.bench import http_load
from recengine.serving import Recommender
from recengine.serving.http import create_app
from recengine.serving.local_server import local_server
from tests.serving.conftest import model_dir  # noqa: F401  (the shared fixture)

pytest.importorskip("fastapi")

HISTORIES = [[1, 2, 3], [7], list(range(20, 40)), [5, 6], [299, 0]]


def test_replies_match_the_python_api_in_request_order(model_dir):  # noqa: F811
    rec = Recommender.load(model_dir)
    bodies = [json.dumps({"history": h, "k": 5}).encode() for h in HISTORIES]
    with local_server(create_app(recommender=rec)) as url:
        address = urlparse(url)
        out = asyncio.run(http_load.run_load(address.hostname, address.port, bodies, clients=2))
    assert out["statuses"] == [200] * len(HISTORIES)
    assert [r["items"] for r in out["replies"]] == rec.recommend(HISTORIES, k=5).items.tolist()
    assert len(out["latencies_s"]) == len(HISTORIES) and all(t > 0 for t in out["latencies_s"])


def test_bad_request_status_is_reported_not_raised(model_dir):  # noqa: F811
    rec = Recommender.load(model_dir)
    bodies = [json.dumps({"history": [-1], "k": 5}).encode()]
    with local_server(create_app(recommender=rec)) as url:
        address = urlparse(url)
        out = asyncio.run(http_load.run_load(address.hostname, address.port, bodies, clients=1))
    assert out["statuses"] == [422] and out["replies"][0]["field"].startswith("history")


def test_open_loop_sends_every_request_and_times_it_from_when_it_was_due(model_dir):  # noqa: F811
    rec = Recommender.load(model_dir)
    bodies = [json.dumps({"history": h, "k": 5}).encode() for h in HISTORIES * 4]
    with local_server(create_app(recommender=rec)) as url:
        address = urlparse(url)
        out = asyncio.run(http_load.run_open_loop(address.hostname, address.port, bodies, rate=200.0, connections=4))
    assert out["statuses"] == [200] * len(bodies)
    assert [r["items"] for r in out["replies"]] == rec.recommend(HISTORIES * 4, k=5).items.tolist()
    assert all(t > 0 for t in out["latencies_s"])
