"""A uvicorn server on a background thread of this process, bound to loopback on a free port.

For tests and benchmarks that need the real server (sockets, HTTP parsing, the lifespan) without a second
process: ``with local_server(app) as base_url: ...`` starts it, waits until it accepts, and stops it on exit.
A server started as a second process (``recengine serve``) is waited for with ``wait_healthy``.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_healthy(port: int, server: subprocess.Popen, timeout: float = 180.0) -> None:
    """Wait until the server process `server` answers GET /health on loopback `port` with 200; RuntimeError if it
    exits first, TimeoutError after `timeout` seconds."""
    import http.client

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("the server process exited during startup")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"the server on port {port} did not become healthy within {timeout} s")


@contextmanager
def local_server(app, host: str = "127.0.0.1", port: int | None = None, startup_timeout: float = 60.0) -> Iterator[str]:
    """Serve `app` on host:port (a free port by default) while the block runs; yields the base URL."""
    import uvicorn

    port = free_port(host) if port is None else port
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="recengine-local-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"the server on {host}:{port} stopped during startup")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise TimeoutError(f"the server on {host}:{port} did not start within {startup_timeout} s")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
