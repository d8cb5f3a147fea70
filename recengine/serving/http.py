"""The HTTP endpoint: a FastAPI app over one Recommender, with concurrent requests micro-batched.

    POST /recommend        {"history": [ids], "k": 10, "exclude_seen": true}
                           -> {"items": [...], "scores": [...], "truncated": false}
    POST /recommend/batch  {"histories": [[ids], ...], "k": 10, "exclude_seen": true}
                           -> {"results": [{"items", "scores", "truncated"}, ...]}
    GET  /health           -> {"status": "ok", "dtype", "num_items", "max_len"}

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
import json
import os
from contextlib import asynccontextmanager

from recengine.serving.histories import MAX_BATCH
from recengine.serving.micro_batcher import Answer, MicroBatcher
from recengine.serving.recommender import Recommender

#: the longest history one request may carry (only the most recent max_len items are encoded; all are excluded)
MAX_HISTORY = 10_000


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
):
    """The FastAPI app serving `recommender`, or the model at `checkpoint` loaded at startup (item tables in
    `dtype`, the Transformer's arithmetic in `compute_dtype`, its encoder AOT-compiled with `compile`)."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response
    from pydantic import BaseModel, Field, StrictBool, StrictInt

    if (checkpoint is None) == (recommender is None):
        raise ValueError("checkpoint and recommender: give exactly one")

    class RecommendRequest(BaseModel):
        history: list[StrictInt] = Field(max_length=MAX_HISTORY)
        k: StrictInt = 10
        exclude_seen: StrictBool = True

    class BatchRequest(BaseModel):
        histories: list[list[StrictInt]] = Field(min_length=1, max_length=MAX_BATCH)
        k: StrictInt = 10
        exclude_seen: StrictBool = True

    class Recommendation(BaseModel):
        items: list[int]
        scores: list[float]
        truncated: bool

    class BatchRecommendation(BaseModel):
        results: list[Recommendation]

    class FieldError(Exception):
        def __init__(self, field: str, message: str, status: int = 422):
            super().__init__(message)
            self.field, self.message, self.status = field, message, status

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if recommender is not None:
            model = recommender
        else:
            model = Recommender.load(checkpoint, dtype=dtype, compile=compile, compute_dtype=compute_dtype)
        batcher = MicroBatcher(model, max_batch=max_batch, max_wait_ms=max_wait_ms)
        await batcher.start()
        app.state.recommender, app.state.batcher = model, batcher
        yield
        await batcher.stop()

    app = FastAPI(title="recengine", lifespan=lifespan)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {"loc": ("body",), "msg": "invalid request"}
        loc = [str(p) for p in first.get("loc", ()) if p != "body"]
        field = ".".join(loc) if loc else "body"
        if first.get("type") == "json_invalid":
            field = "body"
        return JSONResponse(status_code=422, content={"error": f"{field}: {first.get('msg')}", "field": field})

    @app.exception_handler(FieldError)
    async def _field_error(request: Request, exc: FieldError):
        return JSONResponse(status_code=exc.status, content={"error": exc.message, "field": exc.field})

    def check(history: list[int], k: int, field: str) -> None:
        model: Recommender = app.state.recommender
        n = model.num_items
        for i, item in enumerate(history):
            if not 0 <= item < n:
                raise FieldError(f"{field}.{i}", f"{field}[{i}]: item id {item} is not in the catalog (ids 0..{n - 1})")
        if not 1 <= k <= n:
            raise FieldError("k", f"k: expected 1..{n} (the catalog size), got {k}")

    async def answer(history: list[int], k: int, exclude_seen: bool, field: str) -> Answer:
        try:
            return await app.state.batcher.submit(history, k, exclude_seen)
        except (ValueError, IndexError, TypeError) as exc:  # e.g. k larger than the unseen items
            name = "k" if str(exc).startswith("k") else field
            raise FieldError(name, str(exc)) from exc

    @app.get("/health")
    async def health() -> dict:
        model: Recommender = app.state.recommender
        return {"status": "ok", "dtype": model.dtype, "num_items": model.num_items, "max_len": model.max_len}

    # the answers are built here from lists the model produced, so they are written straight to JSON bytes:
    # returning a Response skips FastAPI's re-validation of the response model (the model still documents it)
    @app.post("/recommend", response_model=Recommendation)
    async def recommend(req: RecommendRequest):
        check(req.history, req.k, "history")
        a = await answer(req.history, req.k, req.exclude_seen, "history")
        return Response(_answer_json(a), media_type="application/json")

    @app.post("/recommend/batch", response_model=BatchRecommendation)
    async def recommend_batch(req: BatchRequest):
        for b, h in enumerate(req.histories):
            if len(h) > MAX_HISTORY:
                raise FieldError(f"histories.{b}", f"histories[{b}]: {len(h)} items > {MAX_HISTORY}")
            check(h, req.k, f"histories.{b}")
        answers = await asyncio.gather(
            *(answer(h, req.k, req.exclude_seen, f"histories.{b}") for b, h in enumerate(req.histories))
        )
        body = b'{"results":[' + b",".join(_answer_json(a) for a in answers) + b"]}"
        return Response(body, media_type="application/json")

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
) -> None:
    """Run the endpoint with uvicorn until interrupted. `threads` sets this process's torch intra-op threads
    once, before the model loads (None leaves torch's default); `compile` and `compute_dtype` as in
    `create_app`."""
    import uvicorn

    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    app = create_app(
        checkpoint,
        dtype=dtype,
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
        compile=compile,
        compute_dtype=compute_dtype,
    )
    uvicorn.run(app, host=host, port=port, log_level="warning")
