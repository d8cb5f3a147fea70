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


def test_a_kept_alive_connection_the_server_closed_is_retried_once_on_a_new_one():
    """A server that answers one request per connection and then closes it without saying so (as an idle
    keep-alive timeout does): every request still gets its answer, through a new connection."""
    served = []

    async def handle(reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(next(x for x in head.split(b"\r\n") if x.lower().startswith(b"content-length")).split(b":")[1])
        served.append(await reader.readexactly(length))
        body = b'{"items": [1]}'
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            bodies = [json.dumps({"history": [i], "k": 1}).encode() for i in range(6)]
            return await http_load.run_open_loop("127.0.0.1", port, bodies, rate=50.0, connections=1)

    out = asyncio.run(main())
    assert out["statuses"] == [200] * 6
    assert sorted(json.loads(b)["history"][0] for b in served) == list(range(6))  # each sent and answered once
