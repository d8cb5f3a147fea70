"""EarlyShed: refuse a recommendation request the model cannot answer by its deadline before reading its body.

Under overload most of the requests a server sees are refused, and on a machine the server shares (its load
generator, its neighbours) what each refusal costs is taken from the requests it does answer. The micro-batcher
refuses a request whose deadline the queued work would pass (``MicroBatcher.check_admission``), but only after
the request's JSON body was read, parsed and validated. This layer asks the same question as a request arrives,
from its headers alone (one request's worth of work: a batch request counts as one here and is checked in full
once parsed), and answers 503 with Retry-After at once; the body is never read. The answer is the batcher's own
(the same message and cause "shed"), so clients and metrics cannot tell where it was refused.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from recengine.serving.micro_batcher import MicroBatcher, Overloaded

SHED_PATHS = ("/recommend", "/recommend/batch")
"""the paths whose requests queue for the model"""


class EarlyShed:
    """A plain ASGI layer in front of the app: POSTs to ``SHED_PATHS`` that the batcher would shed get 503 at once.

    `batcher()` returns the running MicroBatcher (None before the app started); `deadline_s` is each request's
    deadline from its arrival, ``scope["recengine"]["arrival"]`` (set by the layer outside this one)."""

    def __init__(self, app, batcher: Callable[[], MicroBatcher | None], deadline_s: float, retry_after_s: int):
        self.app, self.batcher, self.deadline_s = app, batcher, deadline_s
        self.retry_after = str(retry_after_s).encode()

    async def __call__(self, scope, receive, send):
        batcher = self.batcher() if scope["type"] == "http" else None
        if batcher is None or scope.get("method") != "POST" or scope.get("path") not in SHED_PATHS:
            return await self.app(scope, receive, send)
        info = scope.get("recengine") or {}
        left = info.get("arrival", time.monotonic()) + self.deadline_s - time.monotonic()
        try:
            batcher.check_admission(1, left)
        except Overloaded as exc:
            info["cause"] = exc.cause
            body = json.dumps({"error": str(exc)}).encode()
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", self.retry_after),
            ]
            await send({"type": "http.response.start", "status": 503, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        return await self.app(scope, receive, send)
