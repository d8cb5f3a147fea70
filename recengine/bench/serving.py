"""Serving benchmark: `recengine.serving.Recommender` against plain PyTorch eager doing the same job.

    python -m recengine.bench.serving --checkpoint runs/sasrec [--quick] [--json results/bench_serving.json]

Sections, all in one run (each prints a table; --json writes every figure):

* quality: on the test users of the checkpoint's dataset (ml-100k), each table dtype's bytes against float32,
  its top-10 overlap with the float32 model and its test HR@10 / NDCG@10 (full ranking, seen items excluded);
* latency: p50 / p99 of one `recommend` call at batch 1, 16 and 256 (histories drawn from the test users) for
  every VARIANT (table dtype; eager or AOT-compiled encoder; float32 or bfloat16 arithmetic) and for the eager
  reference (nn.Embedding + the same Transformer + matmul + masked
  topk, the answer a plain-PyTorch user writes), calls interleaved so every provider sees the same machine;
  the float32 answers are checked against the eager reference's;
* neighbour: the batch-1 and batch-16 latencies again in child processes beside a busy neighbour process
  (a spinning torch matmul loop), once with OpenMP's wait policy ACTIVE (spin) and once PASSIVE (sleep);
* http: the endpoint (`recengine.serving.http.serve` in a child process, OMP_WAIT_POLICY=PASSIVE, one torch
  thread) under 32 concurrent keep-alive loopback connections from a load-generator process
  (recengine.bench.http_load) sending a bounded number of requests: requests/s, p50 / p99, every answer
  checked against the Python API's; float32 eager, float32 and int8 compiled, and int8 compiled again beside a
  busy neighbour process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from torch import nn

from recengine._atomic import write_json
from recengine.machine import describe_machine
from recengine.nn.sequence_recommender import SequenceRecommender
from recengine.serving.loading import load_any
from recengine.serving.local_server import free_port, wait_healthy
from recengine.serving.recommender import Recommender
from recengine.serving.threads import serving_environment

DTYPES = ("float32", "bfloat16", "int8")
#: the Recommender configurations timed side by side: the table dtypes with the eager encoder, and the
#: AOT-compiled encoder (float32 or bfloat16 arithmetic) over float32 and int8 tables
VARIANTS: dict[str, dict] = {
    **{d: {"dtype": d} for d in DTYPES},
    "float32 compiled": {"dtype": "float32", "compile": True},
    "int8 compiled": {"dtype": "int8", "compile": True},
    "float32 compiled, bf16 compute": {"dtype": "float32", "compile": True, "compute_dtype": "bfloat16"},
    "int8 compiled, bf16 compute": {"dtype": "int8", "compile": True, "compute_dtype": "bfloat16"},
}
BATCHES = (1, 16, 256)
EAGER = "eager PyTorch"


# ------------------------------------------------------------------------------------------ the reference
class EagerReference:
    """The same job in plain eager PyTorch: pad the histories in Python, nn.Embedding, the model's own
    Transformer, states @ E.T + bias over the full catalog, seen items set to -inf, torch.topk."""

    def __init__(self, model: SequenceRecommender):
        enc = model.encoder.eval()
        with torch.no_grad():
            self.embedding = nn.Embedding.from_pretrained(enc.item_embeddings().detach().clone())
        self.enc, self.bias, self.max_len = enc, model.head.bias.detach(), enc.max_len

    @torch.inference_mode()
    def recommend(self, histories: list[list[int]], k: int) -> tuple[torch.Tensor, torch.Tensor]:
        b = len(histories)
        recent = [h[-self.max_len :] for h in histories]
        width = max(1, max(len(h) for h in recent))
        window = torch.zeros(b, width, dtype=torch.int64)
        valid = torch.zeros(b, width, dtype=torch.bool)
        for i, h in enumerate(recent):
            window[i, : len(h)] = torch.tensor(h, dtype=torch.int64)
            valid[i, : len(h)] = True
        x = self.embedding(window) * valid.unsqueeze(-1) + self.enc.position_embedding[:width]
        mask = nn.Transformer.generate_square_subsequent_mask(width)
        x = self.enc.output_norm(self.enc.transformer(self.enc.input_norm(x), mask=mask, is_causal=True))
        lengths = valid.sum(1)
        q = x[torch.arange(b), (lengths - 1).clamp(min=0)]
        q = torch.where((lengths > 0).unsqueeze(1), q, self.enc.empty_state.expand(b, -1))
        logits = q @ self.embedding.weight.T + self.bias
        for i, h in enumerate(histories):
            logits[i, h] = float("-inf")
        scores, items = torch.topk(logits, k, dim=1)
        return items, scores


# -------------------------------------------------------------------------------------------- the inputs
def test_histories(meta: dict[str, str], num_items: int) -> tuple[list[list[int]], np.ndarray | None]:
    """(histories, test targets) of the test users of the dataset a checkpoint's metadata `meta` names; random
    histories over `num_items` items and no targets when the dataset is not ml-100k or cannot be loaded."""
    if meta.get("dataset") == "ml-100k":
        try:
            from recengine.data import histories_of, leave_one_out, load_movielens

            split = leave_one_out(histories_of(load_movielens("ml-100k", download=False)))
            users = split.eval_users
            h = split.histories
            ends = split.prefix_end("test")[users]
            hist = [h.items[h.offsets[u] : e].tolist() for u, e in zip(users, ends)]
            return hist, split.target("test")[users]
        except (FileNotFoundError, ValueError):
            pass
    rng = np.random.default_rng(0)
    return [rng.integers(0, num_items, int(rng.integers(5, 200))).tolist() for _ in range(943)], None


def _batches(histories: list[list[int]], size: int, count: int, seed: int) -> list[list[list[int]]]:
    rng = np.random.default_rng(seed)
    return [[histories[i] for i in rng.integers(0, len(histories), size)] for _ in range(count)]


# ------------------------------------------------------------------------------------------------ quality
def quality(recs: dict[str, Recommender], histories, targets) -> dict[str, dict]:
    """Per dtype: table bytes and their ratio to float32, top-10 overlap with float32, test HR/NDCG@10."""
    from recengine.eval.metrics import metrics_from_ranks, target_ranks

    out = {}
    base_items = None
    for dtype, rec in sorted(recs.items(), key=lambda kv: kv[0] != "float32"):  # float32 first: the base
        items = torch.cat([rec.recommend(histories[i : i + 512], k=10).items for i in range(0, len(histories), 512)])
        row = {
            "table_bytes": rec.encoder.table.nbytes(),
            "bytes_vs_float32": rec.encoder.table.nbytes() / recs["float32"].encoder.table.nbytes(),
        }
        if base_items is None:
            base_items = items
        row["top10_overlap_vs_float32"] = float(
            np.mean([len(set(a) & set(b)) / 10 for a, b in zip(items.tolist(), base_items.tolist())])
        )
        if targets is not None:
            row.update(metrics_from_ranks(target_ranks(items, torch.from_numpy(targets)), ks=(10,)))
        out[dtype] = row
    return out


# ------------------------------------------------------------------------------------------------ latency
def _percentiles(times: list[float]) -> dict[str, float]:
    ms = np.asarray(times) * 1e3
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)), "calls": len(ms)}


def latency(
    recs: dict[str, Recommender], eager: EagerReference, histories, batches=BATCHES, calls: dict[int, int] | None = None
) -> dict[str, dict]:
    """{f"{provider} b{B}": {p50_ms, p99_ms, calls}} with the providers' calls interleaved; raises if the float32
    Recommender and the eager reference disagree on an answer."""
    calls = calls or {1: 300, 16: 150, 256: 30}
    providers = {
        **{d: (lambda b, r=r: r.recommend(b, k=10)) for d, r in recs.items()},
        EAGER: lambda b: eager.recommend(b, k=10),
    }
    out = {}
    for size in batches:
        inputs = _batches(histories, size, calls[size], seed=size)
        for fn in providers.values():  # warm up
            fn(inputs[0])
        times = {name: [] for name in providers}
        for batch in inputs:
            for name, fn in providers.items():
                t0 = time.perf_counter()
                fn(batch)
                times[name].append(time.perf_counter() - t0)
        if "float32" in recs:
            ours, ref = recs["float32"].recommend(inputs[0], k=10).items, eager.recommend(inputs[0], k=10)[0]
            if not torch.equal(ours, ref):
                raise AssertionError(f"batch {size}: the float32 Recommender and the eager reference disagree")
        for name, t in times.items():
            out[f"{name} b{size}"] = _percentiles(t)
    return out


def _neighbour() -> subprocess.Popen:
    """A process that keeps the cores busy (torch matmuls on every core) until killed."""
    code = "import torch\na = torch.randn(512, 512)\nwhile True:\n    a = (a @ a).tanh()\n"
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


NEIGHBOUR_VARIANTS = ("int8", "int8 compiled")
"""the variants the neighbour section times (their packages are cached by then: the children only load them)"""


def neighbour(checkpoint: str, quick: bool, threads: int = 1) -> dict[str, dict]:
    """Batch-1 and batch-16 latencies in child processes beside a busy neighbour, per OpenMP wait policy."""
    out = {}
    for policy in ("ACTIVE", "PASSIVE"):
        env = serving_environment(policy.lower())
        argv = [sys.executable, "-m", "recengine.bench.serving", "--checkpoint", checkpoint, "--child-latency"]
        argv += ["--threads", str(threads)]
        busy = _neighbour()
        try:
            time.sleep(1.0)
            res = subprocess.run(
                argv + (["--quick"] if quick else []), env=env, capture_output=True, text=True, timeout=900, check=True
            )
        finally:
            busy.kill()
            busy.wait()
        for name, row in json.loads(res.stdout.strip().splitlines()[-1]).items():
            out[f"{name} (wait {policy.lower()})"] = row
    return out


# --------------------------------------------------------------------------------------------------- http
def http_load(
    checkpoint: str,
    rec: Recommender,
    histories,
    *,
    variant: str,
    clients: int = 32,
    requests: int = 2000,
    max_batch: int = 256,
    max_wait_ms: float = 2.0,
    server_threads: int = 1,
    busy_neighbour: bool = False,
) -> dict:
    """The endpoint in a child process (`server_threads` torch threads) under `clients` concurrent keep-alive
    connections from a second child process (recengine.bench.http_load), `requests` in all; with
    `busy_neighbour`, a third process keeps the cores busy throughout."""
    port = free_port()
    opts = VARIANTS[variant]
    code = (
        f"from recengine.serving.http import serve; serve({checkpoint!r}, '127.0.0.1', {port}, {opts['dtype']!r}, "
        f"{max_batch}, {max_wait_ms}, threads={server_threads}, compile={opts.get('compile', False)!r}, "
        f"compute_dtype={opts.get('compute_dtype', 'float32')!r})"
    )
    rng = np.random.default_rng(7)
    picks = [histories[i] for i in rng.integers(0, len(histories), requests)]
    expected = torch.cat([rec.recommend(picks[i : i + 256], k=10).items for i in range(0, requests, 256)]).tolist()
    server = subprocess.Popen([sys.executable, "-c", code], env=serving_environment("passive"))
    busy = None
    try:
        wait_healthy(port, server, timeout=120.0)
        with tempfile.TemporaryDirectory(prefix="recengine-http-load-") as tmp:
            req_file, out_file = os.path.join(tmp, "requests.json"), os.path.join(tmp, "replies.json")
            with open(req_file, "w") as f:
                json.dump([{"history": h, "k": 10} for h in picks], f)
            if busy_neighbour:
                busy = _neighbour()
                time.sleep(1.0)
            argv = [sys.executable, "-m", "recengine.bench.http_load", "--port", str(port)]
            argv += ["--requests", req_file, "--out", out_file, "--clients", str(clients)]
            subprocess.run(argv, check=True, timeout=1800)
            with open(out_file) as f:
                load = json.load(f)
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
        server.terminate()
        server.wait(timeout=30)
    wrong = sum(
        status != 200 or reply.get("items") != want
        for status, reply, want in zip(load["statuses"], load["replies"], expected)
    )
    return {
        "variant": variant,
        "clients": clients,
        "requests": requests,
        "server_threads": server_threads,
        "requests_per_s": requests / load["wall_s"],
        **_percentiles(load["latencies_s"]),
        "answers_differing_from_python_api": wrong,
    }


# --------------------------------------------------------------------------------------------------- main
def _table(title: str, rows: dict[str, dict]) -> str:
    keys = sorted({k for r in rows.values() for k in r})
    lines = [f"\n{title}", "| case | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, r in rows.items():
        cells = [f"{r[k]:.4g}" if isinstance(r.get(k), float) else str(r.get(k, "")) for k in keys]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="recengine bench serving", description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", required=True, help="a `recengine train` output dir or model file")
    p.add_argument("--quick", action="store_true", help="fewer calls and requests (a smoke run)")
    p.add_argument("--sections", default="quality,latency,neighbour,http")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads of the timing processes (default 1, as `recengine serve` runs the model)",
    )
    p.add_argument("--json", default=None, help="write every figure here")
    p.add_argument("--child-latency", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.threads < 1:
        raise SystemExit("error: --threads must be >= 1")
    torch.set_num_threads(args.threads)  # this benchmark process's own setting, as a server sets its own
    loaded = load_any(args.checkpoint)
    model, _ = loaded.model()
    histories, targets = test_histories(loaded.metadata, model.encoder.num_items)
    eager = EagerReference(model)
    calls = {1: 60, 16: 30, 256: 8} if args.quick else None
    if args.child_latency:
        rec = {v: Recommender.load(args.checkpoint, **VARIANTS[v]) for v in NEIGHBOUR_VARIANTS}
        print(json.dumps(latency(rec, eager, histories, batches=(1, 16), calls=calls)))
        return 0
    recs, load_seconds = {}, {}
    for name, opts in VARIANTS.items():  # the compiled ones compile here, or read their cached package
        start = time.perf_counter()
        recs[name] = Recommender.load(args.checkpoint, **opts)
        load_seconds[name] = time.perf_counter() - start
    sections = args.sections.split(",")
    results: dict = {
        "machine": describe_machine(),
        "checkpoint": args.checkpoint,
        "load_seconds": load_seconds,
    }
    if "quality" in sections:
        results["quality"] = quality(recs, histories, targets)
        print(_table("quality (test users)", results["quality"]))
    if "latency" in sections:
        results["latency"] = latency(recs, eager, histories, calls=calls)
        print(_table("recommend latency, k=10", results["latency"]))
    if "neighbour" in sections:
        results["neighbour"] = neighbour(args.checkpoint, args.quick, args.threads)
        print(_table("beside a busy neighbour process", results["neighbour"]))
    if "http" in sections:
        n = 300 if args.quick else 2000
        results["http"] = {
            v: http_load(args.checkpoint, recs[v], histories, variant=v, requests=n)
            for v in ("float32", "float32 compiled", "int8 compiled")
        }
        results["http"]["int8 compiled, busy neighbour"] = http_load(
            args.checkpoint, recs["int8 compiled"], histories, variant="int8 compiled", requests=n, busy_neighbour=True
        )
        print(_table("HTTP, 32 loopback clients", results["http"]))
    if args.json:
        write_json(args.json, results)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
