"""EarlyShed: a request the busy model cannot answer by its deadline gets 503 from its headers alone, its body
never read, counted under cause "shed", and the keep-alive connection stays usable."""

from __future__ import annotations

import http.client
import json
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

import pytest

from recengine.serving.http import create_app
from recengine.serving.local_server import local_server
from recengine.serving.recommender import Recommender
from tests.serving.test_operations import HISTORY, Gated, call


@pytest.fixture(scope="module")
def rec(model_dir):
    return Recommender.load(model_dir)


def test_a_request_the_busy_model_cannot_answer_in_time_is_shed_before_its_body_is_read(rec):
    gated = Gated(rec)
    app = create_app(recommender=gated, max_batch=1, max_wait_ms=0.0, deadline_ms=300.0)
    with local_server(app) as url:
        app.state.batcher._observe(1, 10.0)  # the model's measured cost: 10 s a batch, far past any deadline
        with ThreadPoolExecutor(max_workers=1) as pool:
            running = pool.submit(call, url, "POST", "/recommend", {"history": HISTORY, "k": 5})
            assert gated.entered.wait(30)
            u = urlparse(url)
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
            try:  # a body that is not even JSON: refused for the load, so it was never parsed (else 422)
                conn.request("POST", "/recommend", body=b"not json", headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                status, body, retry = resp.status, json.loads(resp.read()), resp.getheader("retry-after")
                conn.request("GET", "/metrics")  # the connection stays usable (keep-alive)
                health = conn.getresponse()
                health_status = health.status
                health.read()
            finally:
                conn.close()
            gated.gate.set()
            assert running.result()[0] in (200, 504)  # answered, in time or not (the gate opened at once)
        _, metrics, _ = call(url, "GET", "/metrics")
    assert status == 503 and retry == "1" and "model is busy" in body["error"], body
    assert health_status == 200
    assert 'recengine_requests_total{cause="shed",endpoint="/recommend",status="503"} 1.0' in metrics
