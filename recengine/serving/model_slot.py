"""ModelSlot: the model a server answers with, replaced by a new checkpoint without stopping.

    slot = ModelSlot(loader, recommender, ModelInfo.of(path, version=1))
    model, info = slot.current                 # what a request takes once, when it arrives
    result = await slot.reload("runs/v2")      # loaded and checked off the event loop, then swapped in

A reload loads the checkpoint on a thread of its own (the requests keep being answered by the old model on
theirs), checks it (it answers a probe request with finite scores, and serves the same catalog: item ids keep
their meaning) and only then replaces the current pair in one assignment. A request holds the model it took
when it arrived until it is answered, so requests in flight finish on the model they started with. A bad or
incompatible checkpoint raises ReloadError with the reason and leaves the old model serving. One reload runs at
a time; a second, while one runs, is refused (ReloadError, busy).

Each model carries its version (1 for the model the server started with, one more for every swap) and the
SHA-256 digest of its checkpoint file(s), which /health reports.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from recengine.checkpoint import CheckpointError
from recengine.distributed.model_checkpoint import is_sharded_model
from recengine.serving.preflight import CHECKPOINT_FILES
from recengine.serving.recommender import Recommender


def checkpoint_digest(path: str | os.PathLike) -> str:
    """ "sha256:<hex>" of the checkpoint at `path`: the file, the first of CHECKPOINT_FILES of a run directory,
    or every file of a sharded model directory (by name); CheckpointError when there is none."""
    path = os.fspath(path)
    if os.path.isdir(path):
        if is_sharded_model(path):
            files = sorted(os.path.join(path, n) for n in os.listdir(path) if os.path.isfile(os.path.join(path, n)))
        else:
            files = [os.path.join(path, n) for n in CHECKPOINT_FILES if os.path.isfile(os.path.join(path, n))][:1]
    else:
        files = [path] if os.path.isfile(path) else []
    if not files:
        raise CheckpointError(f"{path}: no checkpoint file to read")
    h = hashlib.sha256()
    for name in files:
        with open(name, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return "sha256:" + h.hexdigest()


@dataclass(frozen=True)
class ModelInfo:
    """What /health says about the model serving: its version in this process, checkpoint and digest."""

    version: int
    checkpoint: str | None
    digest: str | None
    loaded_at: float
    """seconds since the epoch"""

    def as_dict(self) -> dict:
        return asdict(self)


class ReloadError(RuntimeError):
    """A reload refused: the checkpoint is bad or incompatible (the old model keeps serving), or one is
    already running (`busy`)."""

    def __init__(self, message: str, *, busy: bool = False):
        super().__init__(message)
        self.busy = busy


def check_model(candidate: Recommender, serving: Recommender | None, where: str) -> None:
    """ReloadError naming `where` unless `candidate` can replace `serving`: the same catalog size (the ids a
    client holds keep their meaning) and a probe request answered with k finite scores."""
    if serving is not None and candidate.num_items != serving.num_items:
        raise ReloadError(
            f"{where}: incompatible: a catalog of {candidate.num_items} items, the model serving has "
            f"{serving.num_items} (item ids would change meaning)"
        )
    k = min(10, candidate.num_items)
    try:
        items, scores = candidate.recommend([[0]], k, exclude_seen=False)
    except Exception as exc:  # noqa: BLE001 - any failure of the probe refuses the model
        raise ReloadError(f"{where}: the model failed a probe request ({type(exc).__name__}: {exc})") from exc
    values = scores.flatten().tolist()
    if tuple(items.shape) != (1, k) or not all(math.isfinite(v) for v in values):
        raise ReloadError(f"{where}: the model answered a probe request with non-finite or misshapen scores")


class ModelSlot:
    """The (Recommender, ModelInfo) pair serving now, and the machinery that replaces it."""

    def __init__(
        self,
        loader: Callable[[str], Recommender],
        recommender: Recommender,
        info: ModelInfo,
        *,
        on_swap: Callable[[str, ModelInfo | None, str | None], None] | None = None,
    ):
        self._loader = loader
        self._current = (recommender, info)
        self._busy = False
        self._on_swap = on_swap
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recengine-reload")
        #: the outcome of the last reload: {"ok": bool, "checkpoint", "error" or "version", "at"}, None before any
        self.last_reload: dict | None = None

    @property
    def current(self) -> tuple[Recommender, ModelInfo]:
        """The model serving now and its info (one read: the pair never mixes two models)."""
        return self._current

    def close(self) -> None:
        """Stop the reload thread (a load under way finishes; its model is dropped)."""
        self._thread.shutdown(wait=False, cancel_futures=True)

    def _load(self, path: str) -> tuple[Recommender, str]:
        before = checkpoint_digest(path)
        candidate = self._loader(path)
        check_model(candidate, self._current[0], path)
        if checkpoint_digest(path) != before:
            raise ReloadError(f"{path}: the checkpoint changed while it was loading; offer it again")
        return candidate, before

    async def reload(self, path: str | os.PathLike) -> ModelInfo:
        """Load the checkpoint at `path` off the event loop, check it and swap it in; its ModelInfo. Raises
        ReloadError (bad, incompatible or busy) with the old model still serving."""
        path = os.fspath(path)
        if self._busy:
            raise ReloadError("a reload is already running; try again when it ends", busy=True)
        self._busy = True
        try:
            try:
                candidate, digest = await asyncio.get_running_loop().run_in_executor(self._thread, self._load, path)
            except ReloadError as exc:
                self._failed(path, str(exc))
                raise
            except Exception as exc:  # noqa: BLE001 - CheckpointError, OSError, a model that does not build...
                message = str(exc) if isinstance(exc, CheckpointError) else f"{path}: {type(exc).__name__}: {exc}"
                self._failed(path, message)
                raise ReloadError(message) from exc
            info = ModelInfo(self._current[1].version + 1, path, digest, time.time())
            self._current = (candidate, info)  # one assignment: a request sees the old pair or the new one
            self.last_reload = {"ok": True, "checkpoint": path, "version": info.version, "at": info.loaded_at}
            if self._on_swap is not None:
                self._on_swap("ok", info, None)
            return info
        finally:
            self._busy = False

    def _failed(self, path: str, message: str) -> None:
        self.last_reload = {"ok": False, "checkpoint": path, "error": message, "at": time.time()}
        if self._on_swap is not None:
            self._on_swap("failed", None, message)
