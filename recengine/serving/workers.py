"""Several worker processes answering on one port and sharing one copy of the model in memory (pre-fork).

    serve_workers("runs/sasrec", workers=4, port=8000, dtype="int8")      # `recengine serve --workers 4`

The master process loads the model once (item table, Transformer weights), checks it with a probe request,
opens the listening socket, then forks `workers` children; each runs the HTTP app (recengine.serving.http) over
the model it inherited and accepts on the shared socket. A fork shares the parent's memory copy-on-write and
serving only reads the model, so the workers hold one copy of its tensors between them (benchmarks/RESULTS.md
measures the resident memory of N workers against one: RSS, PSS, USS).

Model swaps keep that sharing: SIGHUP to the master (or POST /admin/reload to any worker, which hands the
request to the master) loads and checks the checkpoint in the master (the path named, or the one it started
with), forks a new generation of workers over it, and only then stops the old generation gracefully (uvicorn
finishes the requests they hold), so no request is dropped and every worker answers from the same new model.
A worker cannot swap its own copy: that copy would be private, and the workers would answer from different
models. A bad checkpoint leaves the old generation serving (logged by the master). A worker that dies is
replaced. SIGTERM or SIGINT stops the workers and the master.

Threads: OpenMP is not fork-safe once a team has run, so the master runs with one torch thread (no team) and
each worker sets its own thread count after the fork.
"""

from __future__ import annotations

import functools
import logging
import os
import selectors
import signal
import socket
import sys
import time

from recengine.serving.model_slot import ModelInfo, ReloadError, check_model, checkpoint_digest
from recengine.serving.recommender import Recommender

log = logging.getLogger("recengine.serving")

#: seconds the master gives a stopping worker to finish the requests it holds before it is killed
STOP_GRACE_S = 30.0


def _run_worker(sock: socket.socket, model: Recommender, info: ModelInfo, ask: int, threads, options: dict) -> None:
    """A worker's life, after the fork: the app over the inherited model on the shared socket."""
    import uvicorn

    from recengine.serving.http import create_app

    signal.set_wakeup_fd(-1)  # the master's
    for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # swaps are the master's
    if threads is not None:
        import torch

        torch.set_num_threads(threads)

    def delegate(path: str | None) -> None:
        os.write(ask, ((path or "") + "\n").encode())

    app = create_app(recommender=model, model_info=info, delegate_reload=delegate, **options)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    server.run(sockets=[sock])


class Master:
    """The pre-fork master: loads models, forks and retires generations of workers (see the module docstring)."""

    def __init__(self, checkpoint, host, port, workers, *, dtype, compile, compute_dtype, threads, options):
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers: expected an int >= 1, got {workers!r}")
        self.checkpoint, self.workers, self.threads, self.options = os.fspath(checkpoint), workers, threads, options
        self.loader = functools.partial(Recommender.load, dtype=dtype, compile=compile, compute_dtype=compute_dtype)
        self.sock = socket.create_server((host, port), backlog=2048)
        self.sock.set_inheritable(True)
        self.ask_r, self.ask_w = os.pipe()
        self.model: Recommender | None = None
        self.info: ModelInfo | None = None
        self.live: set[int] = set()  # the current generation's pids
        self.retiring: dict[int, float] = {}  # pid -> when it was told to stop
        self.stopping = False
        self.pending: list[str | None] = []  # reloads asked for

    def load(self, path: str) -> None:
        """Load and check `path` in the master; the model the next generation serves. ReloadError if bad."""
        before = checkpoint_digest(path)
        try:
            candidate = self.loader(path)
        except Exception as exc:  # noqa: BLE001 - CheckpointError, OSError, a model that does not build...
            raise ReloadError(f"{path}: {type(exc).__name__}: {exc}") from exc
        check_model(candidate, self.model, path)
        version = 1 if self.info is None else self.info.version + 1
        self.model, self.info = candidate, ModelInfo(version, path, before, time.time())

    def fork_worker(self) -> int:
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                os.close(self.ask_r)
                _run_worker(self.sock, self.model, self.info, self.ask_w, self.threads, self.options)
                code = 0
            finally:
                os._exit(code)
        return pid

    def swap(self, path: str | None) -> None:
        """A new generation over the model at `path` (default: the checkpoint served first), then the old one
        stopped; a bad checkpoint is logged and changes nothing."""
        path = path or self.checkpoint
        try:
            self.load(path)
        except ReloadError as exc:
            log.error("model reload refused, the old workers keep serving: %s", exc)
            return
        old, self.live = self.live, {self.fork_worker() for _ in range(self.workers)}
        for pid in old:
            self._stop(pid)
        log.warning("model swapped in: version %d, %s (%s)", self.info.version, self.info.checkpoint, self.info.digest)

    def _stop(self, pid: int) -> None:
        self.retiring[pid] = time.monotonic()
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    def _reap(self) -> None:
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if self.retiring.pop(pid, None) is None and pid in self.live:
                self.live.discard(pid)
                if not self.stopping:  # died on its own: replaced
                    log.error("worker %d exited; starting another", pid)
                    self.live.add(self.fork_worker())
        # a retiring worker past its grace is killed
        now = time.monotonic()
        for pid, since in list(self.retiring.items()):
            if now - since > STOP_GRACE_S:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    self.retiring.pop(pid, None)

    def run(self) -> None:
        """Serve until SIGTERM / SIGINT: the first generation, then swaps as asked."""
        import torch

        torch.set_num_threads(1)  # no OpenMP team in the master: the forks stay safe
        import uvicorn  # noqa: F401  imported once here, so the workers share these modules' memory too

        import recengine.serving.http  # noqa: F401

        self.load(self.checkpoint)
        wake_r, wake_w = socket.socketpair()
        wake_w.setblocking(False)
        signal.set_wakeup_fd(wake_w.fileno())
        flags: list[str] = []
        signal.signal(signal.SIGHUP, lambda *_: flags.append("reload"))
        signal.signal(signal.SIGTERM, lambda *_: flags.append("stop"))
        signal.signal(signal.SIGINT, lambda *_: flags.append("stop"))
        signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes the loop to reap
        self.live = {self.fork_worker() for _ in range(self.workers)}
        sel = selectors.DefaultSelector()
        sel.register(wake_r, selectors.EVENT_READ)
        sel.register(self.ask_r, selectors.EVENT_READ)
        buffered = b""
        try:
            while not self.stopping:
                for key, _ in sel.select(timeout=1.0):
                    if key.fileobj is wake_r:
                        wake_r.recv(4096)
                    else:
                        buffered += os.read(self.ask_r, 4096)
                        *lines, buffered = buffered.split(b"\n")
                        self.pending += [line.decode() or None for line in lines]
                while flags:
                    flag = flags.pop(0)
                    if flag == "stop":
                        self.stopping = True
                    else:
                        self.pending.append(None)
                if self.stopping:
                    break
                while self.pending:
                    self.swap(self.pending.pop(0))
                self._reap()
        finally:
            self.stopping = True
            for pid in list(self.live):
                self._stop(pid)
            deadline = time.monotonic() + STOP_GRACE_S
            while self.retiring and time.monotonic() < deadline:
                self._reap()
                time.sleep(0.05)
            for pid in list(self.retiring):
                try:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                except (ProcessLookupError, ChildProcessError):
                    pass
            signal.set_wakeup_fd(-1)
            self.sock.close()


def serve_workers(
    checkpoint,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 2,
    *,
    dtype: str = "float32",
    threads: int | None = None,
    compile: bool = False,
    compute_dtype: str = "float32",
    **options,
) -> None:
    """Serve `checkpoint` from `workers` processes sharing one copy of the model until SIGTERM / SIGINT.
    `options`: the other `create_app` settings (max_batch, max_wait_ms, max_queue, deadline_ms, admin_token,
    access_log); `threads`: each worker's torch threads (None: torch's default)."""
    if not logging.getLogger().handlers and not log.handlers:  # swaps and refused reloads reach stderr
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        log.addHandler(handler)
    if options.get("access_log") is True:  # `recengine serve --access-log`: one JSON line per request on stderr
        options["access_log"] = sys.stderr
    elif options.get("access_log") is False:
        options["access_log"] = None
    master = Master(
        checkpoint,
        host,
        port,
        workers,
        dtype=dtype,
        compile=compile,
        compute_dtype=compute_dtype,
        threads=threads,
        options=options,
    )
    master.run()
