"""Serving that operators run: model swaps without downtime (requests in flight finish on their model, a bad or
incompatible checkpoint leaves the old one serving), /metrics in the Prometheus format, the JSON access log, a
bounded queue (503 + Retry-After at once) and per-request deadlines (503 before the model ran, 504 after)."""

from __future__ import annotations

import http.client
import io
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

import pytest
import torch

from recengine.data import make_synthetic
from recengine.serving import Recommender
from recengine.serving.http import create_app
from recengine.serving.local_server import local_server
from recengine.serving.model_slot import checkpoint_digest
from recengine.train import model_from_data, sasrec_checkpoint
from tests.serving.conftest import CFG, NUM_ITEMS

pytest.importorskip("fastapi")
prometheus = pytest.importorskip("prometheus_client.parser")


def call(url, method: str, path: str, body: object | None = None, raw: bytes | None = None, headers=None):
    """(status, parsed JSON or text, headers) of one request to the server at `url`."""
    u = urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    try:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        text = resp.read().decode()
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            parsed = text
        return resp.status, parsed, dict(resp.getheaders())
    finally:
        conn.close()


class Gated:
    """A Recommender whose calls wait until the gate opens (a model that is slow exactly when a test says)."""

    def __init__(self, rec: Recommender):
        self.rec, self.gate, self.entered = rec, threading.Event(), threading.Event()
        self.num_items, self.max_len, self.dtype = rec.num_items, rec.max_len, rec.dtype

    def recommend(self, *args, **kwargs):
        self.entered.set()
        assert self.gate.wait(60), "the test never opened the gate"
        return self.rec.recommend(*args, **kwargs)


@pytest.fixture(scope="module")
def rec(model_dir):
    return Recommender.load(model_dir)


@pytest.fixture(scope="module")
def other_dirs(tmp_path_factory):
    """{"v2": a model of the same catalog with other weights, "small": a model of another catalog size}."""
    out = {}
    for name, items, seed in (("v2", NUM_ITEMS, 5), ("small", NUM_ITEMS // 2, 6)):
        torch.manual_seed(seed)
        model = model_from_data(make_synthetic(40, items, seed=seed), CFG).eval()
        d = tmp_path_factory.mktemp(name)
        sasrec_checkpoint.save_model(str(d / "model.safetensors"), model, CFG, "synthetic")
        out[name] = d
    return out


def items_of(rec, history, k=5):
    return rec.recommend([history], k=k).items[0].tolist()


HISTORY = [3, 9, 27]


# ------------------------------------------------------------------------------------------- model swap
def test_health_names_the_model_version_and_digest(model_dir):
    with local_server(create_app(model_dir)) as url:
        status, body, _ = call(url, "GET", "/health")
    assert status == 200
    assert body["model"]["version"] == 1 and body["model"]["checkpoint"] == str(model_dir)
    assert body["model"]["digest"] == checkpoint_digest(model_dir) and body["model"]["digest"].startswith("sha256:")


def test_a_swap_under_concurrent_requests_drops_none(model_dir, other_dirs, rec):
    v2 = Recommender.load(other_dirs["v2"])
    old, new = items_of(rec, HISTORY), items_of(v2, HISTORY)
    assert old != new
    stop = threading.Event()

    def client():
        seen = []
        while not stop.is_set():
            status, body, _ = call(url, "POST", "/recommend", {"history": HISTORY, "k": 5})
            seen.append((status, body["items"] if status == 200 else body))
        return seen

    with local_server(create_app(model_dir, max_wait_ms=1.0)) as url:
        with ThreadPoolExecutor(max_workers=4) as pool:
            clients = [pool.submit(client) for _ in range(4)]
            time.sleep(0.3)
            status, body, _ = call(url, "POST", "/admin/reload", {"checkpoint": str(other_dirs["v2"])})
            time.sleep(0.3)
            stop.set()
            answers = [a for c in clients for a in c.result()]
        _, health, _ = call(url, "GET", "/health")
    assert status == 200 and body["status"] == "swapped" and body["model"]["version"] == 2
    assert health["model"]["version"] == 2 and health["model"]["digest"] == checkpoint_digest(other_dirs["v2"])
    assert answers and all(s == 200 and items in (old, new) for s, items in answers)
    assert answers[-1][1] == new


def test_requests_in_flight_finish_on_the_model_they_started_with(rec, other_dirs):
    gated = Gated(rec)
    v2 = Recommender.load(other_dirs["v2"])
    with local_server(create_app(recommender=gated, max_wait_ms=0.0)) as url:
        with ThreadPoolExecutor(max_workers=1) as pool:
            in_flight = pool.submit(call, url, "POST", "/recommend", {"history": HISTORY, "k": 5})
            assert gated.entered.wait(30)
            status, body, _ = call(url, "POST", "/admin/reload", {"checkpoint": str(other_dirs["v2"])})
            assert status == 200 and body["model"]["version"] == 2
            gated.gate.set()
            s1, first, _ = in_flight.result()
        s2, second, _ = call(url, "POST", "/recommend", {"history": HISTORY, "k": 5})
    assert s1 == 200 and first["items"] == items_of(rec, HISTORY)
    assert s2 == 200 and second["items"] == items_of(v2, HISTORY)


@pytest.mark.parametrize("bad", ["truncated", "foreign", "missing", "incompatible"])
def test_a_bad_or_incompatible_checkpoint_leaves_the_old_model_serving(model_dir, other_dirs, rec, tmp_path, bad):
    path = tmp_path / "model.safetensors"
    if bad == "truncated":
        data = (model_dir / "model.safetensors").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif bad == "foreign":
        path.write_bytes(b"not a checkpoint at all")
    elif bad == "incompatible":
        path = other_dirs["small"] / "model.safetensors"
    with local_server(create_app(model_dir)) as url:
        status, body, _ = call(url, "POST", "/admin/reload", {"checkpoint": str(path)})
        _, health, _ = call(url, "GET", "/health")
        s, answer, _ = call(url, "POST", "/recommend", {"history": HISTORY, "k": 5})
        _, metrics, _ = call(url, "GET", "/metrics")
    assert status == 422 and str(path) in body["error"]
    if bad == "incompatible":
        assert "incompatible" in body["error"] and "catalog" in body["error"]
    assert health["model"]["version"] == 1 and health["model"]["digest"] == checkpoint_digest(model_dir)
    assert health["last_reload"]["ok"] is False and str(path) in health["last_reload"]["error"]
    assert s == 200 and answer["items"] == items_of(rec, HISTORY)
    assert 'recengine_model_swaps_total{result="failed"} 1.0' in metrics


def test_the_admin_endpoint_needs_the_token_when_one_is_given(model_dir, other_dirs):
    with local_server(create_app(model_dir, admin_token="s3cret")) as url:
        body = {"checkpoint": str(other_dirs["v2"])}
        assert call(url, "POST", "/admin/reload", body)[0] == 401
        assert call(url, "POST", "/admin/reload", body, headers={"Authorization": "Bearer nope"})[0] == 401
        status, reply, _ = call(url, "POST", "/admin/reload", body, headers={"Authorization": "Bearer s3cret"})
    assert status == 200 and reply["model"]["version"] == 2


def test_reload_without_a_path_rereads_the_start_checkpoint(model_dir):
    with local_server(create_app(model_dir)) as url:
        status, body, _ = call(url, "POST", "/admin/reload", {})
    assert status == 200 and body["model"]["version"] == 2 and body["model"]["checkpoint"] == str(model_dir)


# ------------------------------------------------------------------------------------- metrics and logs
def test_metrics_parse_and_count_requests_errors_batches_and_swaps(model_dir, other_dirs):
    log = io.StringIO()
    with local_server(create_app(model_dir, access_log=log)) as url:
        for _ in range(3):
            assert call(url, "POST", "/recommend", {"history": HISTORY, "k": 5})[0] == 200
        assert call(url, "POST", "/recommend", {"history": [NUM_ITEMS], "k": 5})[0] == 422
        assert call(url, "POST", "/admin/reload", {"checkpoint": str(other_dirs["v2"])})[0] == 200
        status, text, headers = call(url, "GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in prometheus.text_string_to_metric_families(text)
        for s in family.samples
    }

    def value(name, **labels):
        return samples[(name, tuple(sorted(labels.items())))]

    assert value("recengine_requests_total", endpoint="/recommend", status="200", cause="ok") == 3
    assert value("recengine_requests_total", endpoint="/recommend", status="422", cause="invalid") == 1
    assert value("recengine_request_duration_seconds_count", endpoint="/recommend") == 4
    assert value("recengine_batch_size_count") >= 1 and value("recengine_batch_size_sum") == 3
    assert value("recengine_queue_depth") == 0
    assert value("recengine_model_swaps_total", result="ok") == 1 and value("recengine_model_version") == 2
    lines = [json.loads(line) for line in log.getvalue().splitlines()]
    assert [(r["path"], r["status"], r["cause"]) for r in lines[:4]] == [("/recommend", 200, "ok")] * 3 + [
        ("/recommend", 422, "invalid")
    ]
    assert lines[0]["model_version"] == 1 and lines[0]["duration_ms"] >= 0 and lines[0]["client"] == "127.0.0.1"


def test_the_access_log_is_off_by_default(model_dir, capsys):
    with local_server(create_app(model_dir)) as url:
        call(url, "POST", "/recommend", {"history": HISTORY, "k": 5})
    assert '"path"' not in capsys.readouterr().err


# --------------------------------------------------------------------------------------------- overload
def test_past_the_queue_a_request_gets_503_with_retry_after_at_once(rec):
    gated = Gated(rec)
    with local_server(create_app(recommender=gated, max_batch=1, max_wait_ms=0.0, max_queue=2)) as url:
        with ThreadPoolExecutor(max_workers=3) as pool:
            running = pool.submit(call, url, "POST", "/recommend", {"history": HISTORY, "k": 5})
            assert gated.entered.wait(30)
            queued = [pool.submit(call, url, "POST", "/recommend", {"history": [i], "k": 5}) for i in (1, 2)]
            deadline = time.monotonic() + 30
            while call(url, "GET", "/metrics")[1].count("recengine_queue_depth 2.0") == 0:
                assert time.monotonic() < deadline, "the two requests never queued"
                time.sleep(0.01)
            status, body, headers = call(url, "POST", "/recommend", {"history": [4], "k": 5})
            batch = call(url, "POST", "/recommend/batch", {"histories": [[5]], "k": 5})
            gated.gate.set()
            results = [running.result(), *(q.result() for q in queued)]
        _, metrics, _ = call(url, "GET", "/metrics")
    assert status == 503 and headers["retry-after"] == "1" and "queue is full" in body["error"]
    assert batch[0] == 503 and batch[2]["retry-after"] == "1"
    assert [r[0] for r in results] == [200, 200, 200]
    assert 'recengine_requests_total{cause="queue_full",endpoint="/recommend",status="503"} 1.0' in metrics


def test_a_request_past_its_deadline_gets_503_waiting_or_504_running(rec):
    gated = Gated(rec)
    app = create_app(recommender=gated, max_batch=1, max_wait_ms=0.0, deadline_ms=300.0)
    with local_server(app) as url:
        with ThreadPoolExecutor(max_workers=2) as pool:
            running = pool.submit(call, url, "POST", "/recommend", {"history": HISTORY, "k": 5})
            assert gated.entered.wait(30)
            waiting = pool.submit(call, url, "POST", "/recommend", {"history": [1], "k": 5})
            s_wait, b_wait, h_wait = waiting.result()
            s_run, b_run, _ = running.result()
            gated.gate.set()
        status, body, _ = call(url, "POST", "/recommend", {"history": HISTORY, "k": 5})
        _, metrics, _ = call(url, "GET", "/metrics")
    assert s_run == 504 and "while the model answered" in b_run["error"]
    assert s_wait == 503 and h_wait["retry-after"] == "1" and "before the model could run" in b_wait["error"]
    assert status == 200 and body["items"] == items_of(rec, HISTORY)  # the server recovers
    assert 'cause="timeout"' in metrics and 'cause="deadline"' in metrics


@pytest.mark.parametrize(
    "kwargs, name",
    [({"max_queue": 0}, "max_queue"), ({"deadline_ms": -1.0}, "deadline_ms"), ({"admin_token": ""}, "admin_token")],
)
def test_bad_settings_are_refused_naming_them(rec, kwargs, name):
    with pytest.raises(ValueError, match=name):
        create_app(recommender=rec, **kwargs)


def test_sighup_reloads_the_checkpoint_of_a_running_recengine_serve(model_dir, other_dirs, tmp_path):
    import os
    import shutil
    import signal
    import subprocess
    import sys

    from recengine.serving.local_server import free_port

    served = tmp_path / "served"
    served.mkdir()
    shutil.copy(model_dir / "model.safetensors", served / "model.safetensors")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    cmd = [sys.executable, "-m", "recengine.cli", "serve", "--checkpoint", str(served), "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"

    def health():
        try:
            return call(url, "GET", "/health")[1]
        except OSError:
            return None

    try:
        deadline = time.monotonic() + 120
        while health() is None:
            assert proc.poll() is None and time.monotonic() < deadline, "recengine serve did not start"
            time.sleep(0.2)
        shutil.copy(other_dirs["v2"] / "model.safetensors", served / "next.safetensors")
        os.replace(served / "next.safetensors", served / "model.safetensors")
        proc.send_signal(signal.SIGHUP)
        while (h := health())["model"]["version"] != 2:
            assert proc.poll() is None and time.monotonic() < deadline, "SIGHUP swapped no model in"
            time.sleep(0.1)
        assert h["model"]["digest"] == checkpoint_digest(other_dirs["v2"])
        (served / "model.safetensors").write_bytes(b"broken")  # a bad file: refused, version 2 keeps serving
        proc.send_signal(signal.SIGHUP)
        while (h := health())["last_reload"]["ok"]:
            assert proc.poll() is None and time.monotonic() < deadline, "the bad reload was never reported"
            time.sleep(0.1)
        assert h["model"]["version"] == 2 and str(served) in h["last_reload"]["error"]
        assert call(url, "POST", "/recommend", {"history": HISTORY, "k": 5})[0] == 200
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    assert "model swapped in: version 2" in err and "model reload refused" in err
