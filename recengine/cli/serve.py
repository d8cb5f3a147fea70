"""`recengine serve`: a trained model answering POST /recommend over HTTP (recengine.serving.http; the [serve]
extra), with micro-batching, inference tables in float32, bfloat16 or int8, and an optional AOT-compiled encoder."""

from __future__ import annotations

import argparse
import functools
import os

from recengine.cli.common import UsageError, non_negative_float, non_negative_int, port_number, positive_int, report

HELP = "serve a trained model over HTTP (the [serve] extra)"
"""the one line `recengine --help` shows for the command"""

DESCRIPTION = (
    "Serve a trained model (a `recengine train` output directory or a model file) over HTTP: POST /recommend "
    "with a user's history answers the top-k items, requests arriving together are merged into one micro-batch, "
    "GET /health and GET /metrics (Prometheus) report on the server, POST /admin/reload or SIGHUP swaps in a new "
    "model without stopping. The checkpoint is loaded and checked before the server starts; once it listens it "
    "prints one line, `serving <checkpoint> on http://host:port`. Needs the [serve] extra."
)
"""what `recengine serve --help` says the command does"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``serve`` on ``subparsers`` (from ``ArgumentParser.add_subparsers``)."""
    s = subparsers.add_parser("serve", help=HELP, description=DESCRIPTION)
    s.add_argument("--checkpoint", required=True, metavar="PATH", help="a `recengine train` output dir or model file")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s, this machine only)")
    s.add_argument("--port", type=port_number, default=8000, help="port (default: %(default)s)")
    s.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "bfloat16", "int8"],
        help="inference tables (default: %(default)s)",
    )
    s.add_argument(
        "--max-batch", type=positive_int, default=256, help="requests merged into one call (default: %(default)s)"
    )
    s.add_argument(
        "--max-wait-ms",
        type=non_negative_float,
        default=2.0,
        help="how long a request waits to share a batch (default: %(default)s)",
    )
    s.add_argument(
        "--compute-dtype",
        default="float32",
        choices=["float32", "bfloat16"],
        help="the Transformer's arithmetic; bfloat16 is faster where the CPU has AVX512-BF16/AMX "
        "(default: %(default)s)",
    )
    s.add_argument(
        "--compile",
        action="store_true",
        help="run the encoder AOT-compiled (the first start compiles it, tens of seconds; later starts read "
        "the cached package) (default: off)",
    )
    s.add_argument(
        "--threads",
        type=non_negative_int,
        default=1,
        help="torch threads running the model; 0: torch's choice. One thread per process: no sleeping OpenMP "
        "worker to wake for each call (default: %(default)s)",
    )
    s.add_argument(
        "--omp-wait-policy",
        default="passive",
        choices=["passive", "active"],
        help="OpenMP idle threads sleep (passive: fair beside busy neighbours) or spin (default: %(default)s)",
    )
    s.add_argument(
        "--max-queue",
        type=non_negative_int,
        default=1024,
        help="requests that may wait for the model; past it a request is answered 503 with Retry-After at once; "
        "0: no bound (default: %(default)s)",
    )
    s.add_argument(
        "--deadline-ms",
        type=non_negative_float,
        default=5000.0,
        help="each request's time from arrival to answer: 503 while it still waits, 504 once the model runs it; "
        "0: no deadline (default: %(default)s)",
    )
    s.add_argument(
        "--admin-token",
        default=None,
        metavar="TOKEN",
        help="POST /admin/reload takes 'Authorization: Bearer TOKEN' from any client (default: loopback clients "
        "only, no token)",
    )
    s.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        help="worker processes answering on the port, sharing one copy of the model in memory (forked from a "
        "master that loads it; SIGHUP to the master swaps the model in every worker) (default: %(default)s)",
    )
    s.add_argument(
        "--access-log",
        action="store_true",
        help="one JSON line per request on stderr (default: off)",
    )
    s.set_defaults(func=run, check=check)
    return s


def check(args: argparse.Namespace) -> None:
    if not os.path.exists(args.checkpoint):
        raise UsageError(f"--checkpoint: {args.checkpoint} does not exist")
    _check_port(args.host, args.port)
    token = args.admin_token
    if token is not None and (not token or any(c.isspace() or not c.isprintable() for c in token)):
        raise UsageError("--admin-token: expected a non-empty token without spaces or control characters")
    from recengine.serving.preflight import PreflightError, check_servable  # no torch: the wait policy is not set yet

    try:
        check_servable(args.checkpoint)  # the header alone, before any long work
    except PreflightError as exc:
        raise UsageError(f"--checkpoint: {exc}") from None


def _check_port(host: str, port: int) -> None:
    """UsageError unless a server can bind (host, port) now: the address is this machine's and the port free."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UsageError(f"--host: cannot resolve {host!r} ({exc.strerror or exc})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no conflict
        try:
            probe.bind(address)
        except OSError as exc:
            raise UsageError(f"--port: cannot listen on {host}:{port} ({exc.strerror or exc})") from None


def run(args: argparse.Namespace) -> int:
    from recengine.serving.threads import set_wait_policy

    set_wait_policy(args.omp_wait_policy)  # before torch starts its OpenMP threads
    from recengine.checkpoint import CheckpointError
    from recengine.serving.http import serve

    try:
        _serve(serve, args)
    except CheckpointError as exc:  # the whole file is checked as it loads, after the quick check of its header
        return report("recengine serve", UsageError(f"--checkpoint: {exc}"))
    except (ValueError, KeyError, RuntimeError) as exc:  # a file that passed the checks but does not build a model
        return report("recengine serve", UsageError(f"--checkpoint: {args.checkpoint}: cannot load a model ({exc})"))
    return 0


def _serve(serve, args: argparse.Namespace) -> None:
    if args.workers > 1:
        from recengine.serving.workers import serve_workers

        serve = functools.partial(serve_workers, workers=args.workers)
    serve(
        args.checkpoint,
        host=args.host,
        port=args.port,
        dtype=args.dtype,
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        threads=args.threads or None,
        compile=args.compile,
        compute_dtype=args.compute_dtype,
        max_queue=args.max_queue or None,
        deadline_ms=args.deadline_ms or None,
        admin_token=args.admin_token,
        access_log=args.access_log,
        on_listening=lambda url: print(f"serving {args.checkpoint} on {url}", flush=True),
    )
