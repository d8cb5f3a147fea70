"""recengine.serving.workers: two forked workers on one port answer as the Python API does, a swap reaches every
worker (a new generation), a bad checkpoint leaves them serving, SIGTERM stops everything."""

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from recengine.serving import Recommender
from recengine.serving.local_server import free_port
from recengine.serving.threads import serving_environment
from tests.serving.conftest import model_dir  # noqa: F401  (the shared fixture)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _call(port, method, path, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request(
        method, path, body=None if body is None else json.dumps(body), headers={"Content-Type": "application/json"}
    )
    r = conn.getresponse()
    return r.status, dict(r.getheaders()), json.loads(r.read())


def _versions(port, n=12):
    return {_call(port, "GET", "/health")[2]["model"]["version"] for _ in range(n)}


def _children(pid):
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


@pytest.mark.slow
def test_workers_share_answer_swap_and_stop(model_dir, tmp_path):  # noqa: F811
    ckpt = tmp_path / "model.safetensors"
    shutil.copyfile(model_dir / "model.safetensors", ckpt)
    port = free_port()
    code = (
        "from recengine.serving.workers import serve_workers; "
        f"serve_workers({str(ckpt)!r}, '127.0.0.1', {port}, workers=2, threads=1)"
    )
    env = serving_environment("passive")
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    master = subprocess.Popen([sys.executable, "-c", code], env=env)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if _call(port, "GET", "/health")[0] == 200:
                    break
            except OSError:
                assert master.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
        assert len(_children(master.pid)) == 2
        want = Recommender.load(ckpt).recommend([[1, 2, 3]], k=5).items[0].tolist()
        for _ in range(6):
            status, headers, body = _call(port, "POST", "/recommend", {"history": [1, 2, 3], "k": 5})
            assert status == 200 and body["items"] == want and headers["x-model-version"] == "1"
        old = set(_children(master.pid))
        status, _, body = _call(port, "POST", "/admin/reload", {})
        assert status == 202 and body == {"status": "requested"}
        deadline = time.monotonic() + 120
        while not (set(_children(master.pid)).isdisjoint(old) and _versions(port) == {2}):
            assert time.monotonic() < deadline, "the new generation never took over"
            time.sleep(0.3)
        bad = tmp_path / "bad.safetensors"
        bad.write_bytes(ckpt.read_bytes()[:100])
        assert _call(port, "POST", "/admin/reload", {"checkpoint": str(bad)})[0] == 202
        time.sleep(2.0)
        assert _versions(port) == {2} and len(_children(master.pid)) == 2
        workers = _children(master.pid)
        master.send_signal(signal.SIGTERM)
        assert master.wait(timeout=60) == 0
        assert not any(os.path.exists(f"/proc/{pid}") for pid in workers)
    finally:
        if master.poll() is None:
            master.kill()
            master.wait()
