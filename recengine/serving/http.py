"""The HTTP endpoint: a FastAPI app over one Recommender, with concurrent requests micro-batched.

    POST /recommend        {"history": [ids], "k": 10, "exclude_seen": true, "ids": "index"}
                           -> {"items": [...], "scores": [...], "truncated": false}
    POST /recommend/batch  {"histories": [[ids], ...], "k": 10, "exclude_seen": true}
                           -> {"results": [{"items", "scores", "truncated"}, ...]}
    GET  /health           -> {"status": "ok", "dtype", "num_items", "max_len", "model": {"version", "checkpoint",
                               "digest", "loaded_at"}, "last_reload", "vocabulary": true/false}

Every answer computed by a model names its version in the ``X-Model-Version`` header. Item ids are the model's 0-based
indices by default; ``"ids": "raw"`` sends and receives the raw ids of the data the
model was trained on (MovieID, title, ASIN: the checkpoint's item vocabulary); an unknown raw id is a 422 naming it.
    GET  /metrics          -> the Prometheus exposition format (recengine.serving.metrics)
    POST /admin/reload     {"checkpoint": path (default: the one the server started with)}
                           -> {"status": "swapped", "model": {...}}; 422 naming the reason, old model serving

Operations: the queue in front of the model holds at most `max_queue` requests; past it a request is answered
503 with Retry-After at once, and so is one whose deadline the work already queued would pass (estimated from the
model's measured cost per request: under overload the model only works on requests it can answer in time).
Every request has `deadline_ms` from its arrival: still waiting for the model then, 503; the model still working
on it, 504. A new checkpoint is loaded and checked on a thread of its own and
swapped in atomically (recengine.serving.model_slot), through POST /admin/reload (from loopback only, or from
anywhere with ``Authorization: Bearer <admin_token>`` when a token is given) or, under `serve`, on SIGHUP;
requests in flight finish on the model they started with; a bad checkpoint leaves the old model serving.

The model is loaded once, at startup (the app's lifespan). Every request is validated at the edge: a bad
one gets a 4xx JSON body ``{"error": ..., "field": ...}`` naming the field (unknown or negative item id, k
outside 1..catalog size, malformed JSON, wrong types, a history over MAX_HISTORY items) and never reaches the
batch others share. FastAPI and uvicorn are the optional ``serve`` extra (``pip install -e ".[serve]"``).

Threads: the server process owns its thread settings. `serve(threads=...)` sets torch's intra-op threads once,
at startup, for this process only; the model runs on one worker thread (the micro-batcher's), so the kernels'
OpenMP team never competes with a second team of its own. The OpenMP wait policy is read when the runtime
starts, before any of this code runs: see recengine.serving.threads for the choice and how to set it.
"""

# no `from __future__ import annotations`: FastAPI reads the request models of the endpoints defined inside
# create_app from their annotations at runtime, which a string annotation of a local class would hide
import asyncio
import functools
import hmac
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import Literal, TextIO

from recengine.serving.early_shed import EarlyShed
from recengine.serving.histories import MAX_BATCH
from recengine.serving.metrics import CONTENT_TYPE, ServingMetrics
from recengine.serving.micro_batcher import Answer, DeadlineExceeded, MicroBatcher, Overloaded
from recengine.serving.model_slot import ModelInfo, ModelSlot, ReloadError, checkpoint_digest
from recengine.serving.recommender import Recommender

log = logging.getLogger("recengine.serving")

#: the longest history one request may carry (only the most recent max_len items are encoded; all are excluded)
MAX_HISTORY = 10_000
#: the paths counted under their own name in the metrics (any other path counts as "other")
ENDPOINTS = ("/recommend", "/recommend/batch", "/health", "/metrics", "/admin/reload")
#: seconds a client told the queue is full waits before trying again (the Retry-After header)
RETRY_AFTER_S = 1
LOOPBACK = ("127.0.0.1", "::1", "localhost")


class _Observed:
    """A plain ASGI layer that times every HTTP request from its arrival and counts it (and logs it, when the
    access log is on). Handlers read the arrival time and name a cause through ``request.scope["recengine"]``."""

    def __init__(self, app, metrics: ServingMetrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.monotonic()
        info = scope["recengine"] = {"arrival": start, "cause": None, "version": None}
        status = [500]

        async def send_status(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                if info["version"] is not None:  # which model answered (the version /health names)
                    headers = [*message.get("headers", []), (b"x-model-version", str(info["version"]).encode())]
                    message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            path = scope.get("path", "")
            client = scope.get("client")
            self.metrics.observe_request(
                scope.get("method", ""),
                path if path in ENDPOINTS else "other",
                status[0],
                info["cause"],
                time.monotonic() - start,
                client[0] if client else None,
                info["version"],
            )


def _answer_json(a: Answer) -> bytes:
    """One answer as the JSON object {"items", "scores", "truncated"} (compact, UTF-8)."""
    return json.dumps({"items": a.items, "scores": a.scores, "truncated": a.truncated}, separators=(",", ":")).encode()


def create_app(
    checkpoint: str | os.PathLike | None = None,
    *,
    recommender: Recommender | None = None,
    dtype: str = "float32",
    max_batch: int = 256,
    max_wait_ms: float = 2.0,
    compile: bool = False,
    compute_dtype: str = "float32",
    max_queue: int | None = 1024,
    deadline_ms: float | None = 5000.0,
    admin_token: str | None = None,
    access_log: TextIO | None = None,
    reload_signal: bool = False,
    loaded: Recommender | None = None,
    model_info: ModelInfo | None = None,
    delegate_reload: Callable[[str | None], None] | None = None,
    shed: bool = True,
):
    """The FastAPI app serving `recommender`, or the model at `checkpoint` loaded at startup (item tables in
    `dtype`, the Transformer's arithmetic in `compute_dtype`, its encoder AOT-compiled with `compile`); `loaded`
    is that model when the caller has already loaded it from `checkpoint` (`serve` does, so that a bad file is an
    error before the server starts), reloads still read `checkpoint`.

    `max_queue`: requests that may wait for the model (None: no bound); `deadline_ms`: each request's time
    from arrival to answer (None: none); `admin_token`: the bearer token POST /admin/reload accepts from any
    client (None: only loopback clients may reload); `access_log`: a text stream for one JSON line per request
    (None: off); `reload_signal`: reload the checkpoint on SIGHUP (install it only in the process's main
    program: a signal handler is process-wide; `serve` does). `model_info`: what /health says about a given
    `recommender` (its version, checkpoint and digest); `delegate_reload(path)`: POST /admin/reload hands the
    reload to it and answers 202 instead of reloading here (a worker process asks its master,
    recengine.serving.workers). `shed`: refuse at once (503) a request whose deadline the work queued ahead of it
    would pass, from the model's measured cost per request (False: the queue admits by count only)."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response
    from pydantic import BaseModel, Field, StrictBool, StrictInt, StrictStr

    if (checkpoint is None) == (recommender is None):
        raise ValueError("checkpoint and recommender: give exactly one")
    if max_queue is not None and (isinstance(max_queue, bool) or not isinstance(max_queue, int) or max_queue < 1):
        raise ValueError(f"max_queue: expected an int >= 1 or None, got {max_queue!r}")
    if deadline_ms is not None and not (isinstance(deadline_ms, (int, float)) and deadline_ms > 0):
        raise ValueError(f"deadline_ms: expected a number > 0 or None, got {deadline_ms!r}")
    if admin_token is not None and (not isinstance(admin_token, str) or not admin_token):
        raise ValueError("admin_token: expected a non-empty string or None")
    deadline_s = None if deadline_ms is None else deadline_ms / 1000.0
    loader = functools.partial(Recommender.load, dtype=dtype, compile=compile, compute_dtype=compute_dtype)
    metrics = ServingMetrics(access_log)

    class RecommendRequest(BaseModel):
        history: list[StrictInt | StrictStr] = Field(max_length=MAX_HISTORY)
        k: StrictInt = 10
        exclude_seen: StrictBool = True
        ids: Literal["index", "raw"] = "index"

    class BatchRequest(BaseModel):
        histories: list[list[StrictInt | StrictStr]] = Field(min_length=1, max_length=MAX_BATCH)
        k: StrictInt = 10
        exclude_seen: StrictBool = True
        ids: Literal["index", "raw"] = "index"

    class Recommendation(BaseModel):
        items: list[int | str]
        scores: list[float]
        truncated: bool

    class BatchRecommendation(BaseModel):
        results: list[Recommendation]

    class ReloadRequest(BaseModel):
        checkpoint: StrictStr | None = None

    class FieldError(Exception):
        def __init__(self, field: str, message: str, status: int = 422):
            super().__init__(message)
            self.field, self.message, self.status = field, message, status

    def on_swap(result: str, info: ModelInfo | None, error: str | None) -> None:
        metrics.observe_swap(result, None if info is None else info.version)
        if result == "ok":
            log.warning("model swapped in: version %d, %s (%s)", info.version, info.checkpoint, info.digest)
        else:
            log.error("model reload refused, the old model keeps serving: %s", error)

    async def reload(path: str | None) -> ModelInfo:
        path = path if path is not None else checkpoint
        if path is None:
            raise ReloadError("checkpoint: this server started from a model in memory; name the checkpoint")
        return await app.state.slot.reload(path)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if recommender is not None:
            model, info = recommender, model_info or ModelInfo(1, None, None, time.time())
        else:
            model = loaded if loaded is not None else loader(checkpoint)
            info = ModelInfo(1, os.fspath(checkpoint), checkpoint_digest(checkpoint), time.time())
        slot = ModelSlot(loader, model, info, on_swap=on_swap)
        metrics.model_version.set(info.version)
        batcher = MicroBatcher(
            model,
            max_batch=max_batch,
            max_wait_ms=max_wait_ms,
            max_queue=max_queue,
            on_batch=metrics.batch_size.observe,
            shed=shed,
        )
        metrics.queue_depth.set_function(lambda: batcher.queue_depth)
        await batcher.start()
        app.state.slot, app.state.batcher = slot, batcher
        loop = asyncio.get_running_loop()
        hup = []
        if reload_signal:
            loop.add_signal_handler(signal.SIGHUP, lambda: hup.append(loop.create_task(_reload_quietly())))
        yield
        if reload_signal:
            loop.remove_signal_handler(signal.SIGHUP)
        await batcher.stop()
        slot.close()

    async def _reload_quietly() -> None:
        try:
            await reload(None)
        except ReloadError:  # logged and counted by on_swap (or busy: a reload is already running)
            pass

    app = FastAPI(title="recengine", lifespan=lifespan)

    @app.exception_handler(Overloaded)
    async def _overloaded(request: Request, exc: Overloaded):
        request.scope["recengine"]["cause"] = exc.cause
        return JSONResponse(status_code=503, content={"error": str(exc)}, headers={"Retry-After": str(RETRY_AFTER_S)})

    @app.exception_handler(DeadlineExceeded)
    async def _deadline(request: Request, exc: DeadlineExceeded):
        request.scope["recengine"]["cause"] = "timeout" if exc.ran else "deadline"
        status = 504 if exc.ran else 503
        headers = {} if exc.ran else {"Retry-After": str(RETRY_AFTER_S)}
        return JSONResponse(status_code=status, content={"error": str(exc)}, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {"loc": ("body",), "msg": "invalid request"}
        # a union's branch names ("int", "str") are pydantic's, not the request's: the field is the item's position
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "int", "str")]
        field = ".".join(loc) if loc else "body"
        if first.get("type") == "json_invalid":
            field = "body"
        return JSONResponse(status_code=422, content={"error": f"{field}: {first.get('msg')}", "field": field})

    @app.exception_handler(FieldError)
    async def _field_error(request: Request, exc: FieldError):
        return JSONResponse(status_code=exc.status, content={"error": exc.message, "field": exc.field})

    def model_for(request: Request) -> Recommender:
        """The model this request runs on: taken once, when it arrives (a swap later does not change it)."""
        model, info = app.state.slot.current
        request.scope["recengine"]["version"] = info.version
        return model

    def deadline_of(request: Request) -> float | None:
        return None if deadline_s is None else request.scope["recengine"]["arrival"] + deadline_s

    def indices(history: list, ids: str, field: str, model: Recommender) -> list[int]:
        """The history as item indices: raw ids through the model's vocabulary, or the indices as given."""
        if ids == "raw":
            if model.vocabulary is None:
                raise FieldError("ids", "ids: 'raw' needs an item vocabulary, and this model's checkpoint has none")
            try:
                return model.vocabulary.indices(history)
            except KeyError as exc:
                raise FieldError(field, f"{field}: {exc}") from None
        for i, item in enumerate(history):
            if not isinstance(item, int):
                raise FieldError(f"{field}.{i}", f'{field}[{i}]: {item!r} is not an item index (send "ids": "raw")')
        return history

    def in_ids(a: Answer, ids: str, model: Recommender) -> Answer:
        return Answer(model.vocabulary.raw(a.items), a.scores, a.truncated) if ids == "raw" else a

    def check(history: list[int], k: int, field: str, model: Recommender) -> None:
        n = model.num_items
        for i, item in enumerate(history):
            if not 0 <= item < n:
                raise FieldError(f"{field}.{i}", f"{field}[{i}]: item id {item} is not in the catalog (ids 0..{n - 1})")
        if not 1 <= k <= n:
            raise FieldError("k", f"k: expected 1..{n} (the catalog size), got {k}")

    async def answer(
        histories: list[list[int]], k: int, exclude_seen: bool, fields: list[str], model, deadline
    ) -> list[Answer]:
        try:
            return await app.state.batcher.submit_many(histories, k, exclude_seen, model=model, deadline=deadline)
        except (ValueError, IndexError, TypeError) as exc:  # e.g. k larger than the unseen items
            name = "k" if str(exc).startswith("k") else fields[0]
            raise FieldError(name, str(exc)) from exc

    @app.get("/health")
    async def health() -> dict:
        model, info = app.state.slot.current
        return {
            "status": "ok",
            "dtype": model.dtype,
            "num_items": model.num_items,
            "max_len": model.max_len,
            "model": info.as_dict(),
            "last_reload": app.state.slot.last_reload,
            "vocabulary": model.vocabulary is not None,
        }

    @app.get("/metrics")
    async def metrics_text():
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @app.post("/admin/reload")
    async def admin_reload(req: ReloadRequest, request: Request):
        if admin_token is not None:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {admin_token}".encode()):
                return JSONResponse(status_code=401, content={"error": "a valid 'Authorization: Bearer' token"})
        elif request.client is None or request.client.host not in LOOPBACK:
            return JSONResponse(status_code=403, content={"error": "reloads are taken from loopback clients only"})
        if delegate_reload is not None:
            delegate_reload(req.checkpoint)
            return JSONResponse(status_code=202, content={"status": "requested"})
        try:
            info = await reload(req.checkpoint)
        except ReloadError as exc:
            request.scope["recengine"]["cause"] = "reload_busy" if exc.busy else "reload_refused"
            return JSONResponse(status_code=409 if exc.busy else 422, content={"error": str(exc)})
        return {"status": "swapped", "model": info.as_dict()}

    # the answers are built here from lists the model produced, so they are written straight to JSON bytes:
    # returning a Response skips FastAPI's re-validation of the response model (the model still documents it)
    @app.post("/recommend", response_model=Recommendation)
    async def recommend(req: RecommendRequest, request: Request):
        model = model_for(request)
        history = indices(req.history, req.ids, "history", model)
        check(history, req.k, "history", model)
        (a,) = await answer([history], req.k, req.exclude_seen, ["history"], model, deadline_of(request))
        return Response(_answer_json(in_ids(a, req.ids, model)), media_type="application/json")

    @app.post("/recommend/batch", response_model=BatchRecommendation)
    async def recommend_batch(req: BatchRequest, request: Request):
        model = model_for(request)
        histories = []
        for b, h in enumerate(req.histories):
            if len(h) > MAX_HISTORY:
                raise FieldError(f"histories.{b}", f"histories[{b}]: {len(h)} items > {MAX_HISTORY}")
            histories.append(indices(h, req.ids, f"histories.{b}", model))
            check(histories[-1], req.k, f"histories.{b}", model)
        fields = [f"histories.{b}" for b in range(len(req.histories))]
        answers = await answer(histories, req.k, req.exclude_seen, fields, model, deadline_of(request))
        body = b'{"results":[' + b",".join(_answer_json(in_ids(a, req.ids, model)) for a in answers) + b"]}"
        return Response(body, media_type="application/json")

    app.state.metrics = metrics
    if shed and deadline_s is not None:  # inside _Observed: an early refusal is timed and counted like any other
        app.add_middleware(
            EarlyShed,
            batcher=lambda: getattr(app.state, "batcher", None),
            deadline_s=deadline_s,
            retry_after_s=RETRY_AFTER_S,
        )
    app.add_middleware(_Observed, metrics=metrics)
    return app


def serve(
    checkpoint: str | os.PathLike,
    host: str = "127.0.0.1",
    port: int = 8000,
    dtype: str = "float32",
    max_batch: int = 256,
    max_wait_ms: float = 2.0,
    threads: int | None = None,
    compile: bool = False,
    compute_dtype: str = "float32",
    max_queue: int | None = 1024,
    deadline_ms: float | None = 5000.0,
    admin_token: str | None = None,
    access_log: bool = False,
    on_listening: Callable[[str], None] | None = None,
    shed: bool = True,
) -> None:
    """Run the endpoint with uvicorn until interrupted; SIGHUP reloads the checkpoint (the same path, e.g. a
    file replaced by a new model) without stopping. `threads` sets this process's torch intra-op threads
    once, before the model loads (None leaves torch's default); `access_log` writes one JSON line per request
    to stderr; `compile`, `compute_dtype`, `max_queue`, `deadline_ms`, `admin_token` and `shed` as in `create_app`.
    The model is loaded before the server starts, so a checkpoint that does not load raises (CheckpointError)
    here rather than inside uvicorn's startup; `on_listening` is called with the server's URL
    (``http://host:port``) once it accepts connections."""
    import uvicorn

    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    model = Recommender.load(checkpoint, dtype=dtype, compile=compile, compute_dtype=compute_dtype)
    app = create_app(
        checkpoint,
        loaded=model,
        dtype=dtype,
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
        compile=compile,
        compute_dtype=compute_dtype,
        max_queue=max_queue,
        deadline_ms=deadline_ms,
        admin_token=admin_token,
        access_log=sys.stderr if access_log else None,
        reload_signal=True,
        shed=shed,
    )
    if not logging.getLogger().handlers and not log.handlers:  # swaps and refused reloads reach stderr
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        log.addHandler(handler)

    class Server(uvicorn.Server):
        """uvicorn's server, saying where it listens once the socket is bound and the app started."""

        async def startup(self, sockets=None) -> None:
            await super().startup(sockets=sockets)
            if self.started and on_listening is not None:
                on_listening(f"http://{'[' + host + ']' if ':' in host else host}:{port}")

    Server(uvicorn.Config(app, host=host, port=port, log_level="warning")).run()
