"""ServingMetrics: what a server counts, in the Prometheus exposition format (the prometheus-client library),
and its structured access log.

Every metric lives in the server's own CollectorRegistry (never the library's global one: two apps in one
process count apart, and nothing is registered behind a caller's back):

    recengine_requests_total{endpoint, status, cause}   requests answered, by HTTP status and cause
                                                        (ok, invalid, queue_full, deadline, timeout, error, ...)
    recengine_request_duration_seconds{endpoint}        latency histogram, arrival to answer
    recengine_batch_size                                requests per micro-batch (histogram)
    recengine_queue_depth                               requests waiting for the model now (gauge)
    recengine_model_swaps_total{result}                 model reloads, ok or failed
    recengine_model_version                             the version of the model serving (gauge)

The access log, when on, is one JSON object per request and line: time, method, path, status, cause,
duration in milliseconds, the client's address and the model version that answered.
"""

from __future__ import annotations

import json
import threading
import time
from typing import TextIO

#: request latency buckets, seconds
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
#: micro-batch size buckets, requests
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""the media type of the exposition format"""


def cause_of(status: int) -> str:
    """The cause a response of `status` counts under when the handler named none."""
    if status < 400:
        return "ok"
    if status in (400, 413, 422):
        return "invalid"
    if status == 404:
        return "not_found"
    if status == 405:
        return "method"
    if status in (401, 403):
        return "forbidden"
    return "error"


class ServingMetrics:
    """The counters, histograms and gauges of one server, and its access log (`access_log`: a text stream
    the JSON lines go to, or None: off)."""

    def __init__(self, access_log: TextIO | None = None):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "recengine_requests",
            "Requests answered, by endpoint, HTTP status and cause",
            ("endpoint", "status", "cause"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "recengine_request_duration_seconds",
            "Request latency from arrival to answer",
            ("endpoint",),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "recengine_batch_size", "Requests per micro-batch", buckets=BATCH_BUCKETS, registry=self.registry
        )
        self.queue_depth = Gauge("recengine_queue_depth", "Requests waiting for the model", registry=self.registry)
        self.swaps = Counter("recengine_model_swaps", "Model reloads, by result", ("result",), registry=self.registry)
        self.model_version = Gauge("recengine_model_version", "Version of the model serving", registry=self.registry)
        self._log = access_log
        self._log_lock = threading.Lock()

    def observe_request(
        self,
        method: str,
        endpoint: str,
        status: int,
        cause: str | None,
        seconds: float,
        client: str | None = None,
        model_version: int | None = None,
    ) -> None:
        """Count one answered request (and log it when the access log is on)."""
        cause = cause or cause_of(status)
        self.requests.labels(endpoint, str(status), cause).inc()
        self.latency.labels(endpoint).observe(seconds)
        if self._log is not None:
            line = json.dumps(
                {
                    "time": round(time.time(), 6),
                    "method": method,
                    "path": endpoint,
                    "status": status,
                    "cause": cause,
                    "duration_ms": round(seconds * 1000.0, 3),
                    "client": client,
                    "model_version": model_version,
                },
                separators=(",", ":"),
            )
            with self._log_lock:
                self._log.write(line + "\n")
                self._log.flush()

    def observe_swap(self, result: str, version: int | None = None) -> None:
        """Count one model reload (`result` "ok" or "failed"); an ok one sets the version gauge."""
        self.swaps.labels(result).inc()
        if version is not None:
            self.model_version.set(version)

    def render(self) -> bytes:
        """Every metric in the Prometheus text exposition format."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)
