"""`recengine bench train`: what one epoch of the large model's training costs, and how the cost grows.

Each workload trains the large model (SequenceEncoder + full-catalog cross-entropy through the fused catalog op,
AdamW) for a fixed number of target tokens and times every step by phase:

* data: drawing the batch's windows and cutting the all-PAD_ID columns (what the trainer does per step);
* encoder: the Transformer's forward and backward (the item-table lookup included);
* catalog loss: the full-catalog softmax cross-entropy, forward and backward (``catalog_cross_entropy``);
* optimizer: gradient clipping and the AdamW step.

The backward is split exactly, not estimated: the loss is taken on detached copies of the states and the item
table, and their gradients are then pushed through the encoder (the same gradients as one ``loss.backward()``).
Each workload runs in a fresh process, so its peak resident memory (VmHWM) is its own; the table states what
the item table and its AdamW state alone take (parameter, gradient, two moments), so the growth of peak memory
with the catalog can be set against it, and which memory path trained it (SASRecConfig.memory: lean, the
default from 100k items on, adds nothing else the size of the table).

Workloads: the real datasets the project benchmarks on (ml-100k, ML-1M by the SASRec protocol, Amazon Beauty when
its file is found), at their training settings, and synthetic windows at a fixed number of tokens with catalogs
of 10k, 100k and 1M items. Epoch time is the measured time per token times the dataset's tokens per epoch.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np

PHASES = ("data", "encoder", "catalog loss", "optimizer")
"""the phases a training step is split into, in order"""


@dataclass
class TrainWorkload:
    """One training-cost measurement: a dataset (or a synthetic catalog) and the model's sizes."""

    name: str
    dataset: str
    """"ml-100k", "ml-1m", "beauty", or "synthetic" (random windows over `num_items` items)"""
    max_len: int = 50
    dim: int = 64
    num_layers: int = 2
    batch_size: int = 128
    tokens: int = 200_000
    """target tokens timed (the steps before them are a warm-up of 2 steps)"""
    num_items: int = 0
    """synthetic only: the catalog size"""
    data_root: str | None = None
    memory: str = "auto"
    """SASRecConfig.memory: "auto" (lean from 100k items on), "lean" or "standard" """


@dataclass
class TrainCost:
    """What a workload measured."""

    name: str
    num_items: int
    tokens_per_epoch: int
    tokens_timed: int
    steps: int
    seconds: float
    tokens_per_s: float
    epoch_seconds: float
    phase_seconds: dict[str, float] = field(default_factory=dict)
    peak_rss_mib: float = 0.0
    base_rss_mib: float = 0.0
    item_state_mib: float = 0.0
    """item table + its gradient + AdamW's two moments (+ the item bias's four), MiB"""
    lean: bool = False
    """trained on the lean memory path (SASRecConfig.memory)"""


def standard_workloads(quick: bool = False, data_root: str | None = None) -> list[TrainWorkload]:
    """The real datasets at their training settings and the synthetic catalog sweep at a fixed token count
    (`quick`: ml-100k and two small catalogs, few tokens: a smoke run, not figures)."""
    if quick:
        return [
            TrainWorkload("ml-100k", "ml-100k", tokens=6_000, batch_size=32),
            TrainWorkload("synthetic 1k items", "synthetic", num_items=1_000, tokens=6_000, batch_size=32),
            TrainWorkload("synthetic 10k items", "synthetic", num_items=10_000, tokens=6_000, batch_size=32),
        ]
    real = [
        TrainWorkload("ml-100k", "ml-100k", max_len=50, batch_size=32, tokens=60_000),
        TrainWorkload("ml-1m", "ml-1m", max_len=200, batch_size=128, tokens=200_000),
        TrainWorkload("beauty", "beauty", max_len=50, batch_size=128, tokens=100_000, data_root=data_root),
    ]
    sweep = [
        TrainWorkload(f"synthetic {n // 1000}k items", "synthetic", num_items=n, tokens=25_000, batch_size=64)
        for n in (10_000, 100_000, 1_000_000)
    ]
    return real + sweep


def _windows(w: TrainWorkload):
    """(inputs, targets, tokens per epoch, num_items) of the workload's training windows."""
    from recengine.data import histories_of, leave_one_out, load_dataset, training_windows
    from recengine.padding import PAD_ID

    if w.dataset == "synthetic":
        rng = np.random.default_rng(0)
        rows = max(1, -(-w.tokens // w.max_len)) + 2 * w.batch_size
        seq = rng.integers(0, w.num_items, size=(rows, w.max_len + 1), dtype=np.int64)
        return seq[:, :-1].copy(), seq[:, 1:].copy(), rows * w.max_len, w.num_items
    data = load_dataset(w.dataset, root=w.data_root)
    split = leave_one_out(histories_of(data))
    h = split.histories
    inputs, targets, _ = training_windows(h.items, h.offsets[:-1], split.train_end, w.max_len)
    return inputs, targets, int((targets != PAD_ID).sum()), data.num_items


def backward_by_phase(model, x, y) -> tuple[float, float, object]:
    """One forward and backward of `model.loss(x, y)` (no user features), the gradients accumulated into the
    parameters exactly as ``loss.backward()`` would, timed apart: (encoder seconds, catalog-loss seconds, the
    mask of the targets kept). The loss is taken on detached leaves of the states and the item table; their
    gradients are then pushed back through the encoder."""
    import torch

    from recengine.padding import PAD_ID

    t0 = time.perf_counter()
    states = model.encoder(x)
    keep = y != PAD_ID
    kept = states[keep]
    table = model.encoder.item_embeddings()
    t1 = time.perf_counter()
    kept_leaf, table_leaf = kept.detach().requires_grad_(), table.detach().requires_grad_()
    model.head.loss(kept_leaf, y[keep], table_leaf).backward()
    t2 = time.perf_counter()
    if table.is_leaf and table.grad is None:
        # the table is the parameter itself: its gradient becomes the parameter's, as loss.backward() would
        # make it (no copy), and the encoder's lookup gradient is added to it in place
        table.grad, table_leaf.grad = table_leaf.grad, None
        torch.autograd.backward([kept], [kept_leaf.grad])
    else:
        torch.autograd.backward([kept, table], [kept_leaf.grad, table_leaf.grad])
    t3 = time.perf_counter()
    return (t1 - t0) + (t3 - t2), t2 - t1, keep


def measure(w: TrainWorkload) -> TrainCost:
    """Train `w` for its token budget in this process, timing each phase; the caller's RNG state is kept."""
    import torch
    from torch import nn

    from recengine.bench import rss_kib
    from recengine.nn.catalog_head import CatalogHead
    from recengine.nn.sequence_encoder import SequenceEncoder
    from recengine.nn.sequence_recommender import SequenceRecommender
    from recengine.padding import PAD_ID
    from recengine.train.batching import length_bucketed_batches
    from recengine.train.config import SASRecConfig
    from recengine.train.sasrec import training_optimizer

    inputs, targets, tokens_per_epoch, num_items = _windows(w)
    inputs_t, targets_t = torch.from_numpy(inputs), torch.from_numpy(targets)
    cfg = SASRecConfig(dim=w.dim, max_len=w.max_len, num_layers=w.num_layers, num_heads=1, dropout=0.2, memory=w.memory)
    base_rss = rss_kib("VmRSS") / 1024
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        encoder = SequenceEncoder(num_items, w.dim, w.max_len, num_layers=w.num_layers, num_heads=1, dropout=0.2)
        model = SequenceRecommender(encoder, CatalogHead(num_items, w.dim), use_users=False)
        opt = training_optimizer(model, cfg)
        model.train()
        phase = dict.fromkeys(PHASES, 0.0)
        lengths = (inputs != PAD_ID).sum(1)
        timed_tokens, steps, warm = 0, 0, 2
        order = length_bucketed_batches(lengths, w.batch_size, np.random.default_rng(0))
        batches = iter(order)
        while timed_tokens < w.tokens:
            t0 = time.perf_counter()
            idx = next(batches, None)
            if idx is None:
                batches = iter(length_bucketed_batches(lengths, w.batch_size, np.random.default_rng(steps)))
                idx = next(batches)
            idx = torch.from_numpy(idx)
            x, y = inputs_t[idx], targets_t[idx]
            width = int((x != PAD_ID).sum(1).max())
            x, y = x[:, :width], y[:, :width]
            t1 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            encoder_s, loss_s, keep = backward_by_phase(model, x, y)
            t4 = time.perf_counter()
            nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            opt.step()
            t5 = time.perf_counter()
            if warm:
                warm -= 1
                continue
            steps += 1
            timed_tokens += int(keep.sum())
            for name, dt in zip(PHASES, (t1 - t0, encoder_s, loss_s, t5 - t4)):
                phase[name] += dt
    seconds = sum(phase.values())
    item_state = (num_items * w.dim + num_items) * 4 * 4 / 2**20
    return TrainCost(
        name=w.name,
        num_items=num_items,
        tokens_per_epoch=tokens_per_epoch,
        tokens_timed=timed_tokens,
        steps=steps,
        seconds=seconds,
        tokens_per_s=timed_tokens / seconds,
        epoch_seconds=tokens_per_epoch * seconds / timed_tokens,
        phase_seconds=phase,
        peak_rss_mib=rss_kib("VmHWM") / 1024,
        base_rss_mib=base_rss,
        item_state_mib=item_state,
        lean=cfg.lean_memory(num_items),
    )


def _child(w: TrainWorkload, threads: int | None, queue) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)
    try:
        queue.put(("ok", asdict(measure(w))))
    except Exception as exc:  # reported by the parent, naming the workload
        queue.put(("error", f"{type(exc).__name__}: {exc}"))


def run_in_process(w: TrainWorkload, threads: int | None = None) -> TrainCost:
    """`measure(w)` in a fresh process (its own peak memory); RuntimeError naming the workload if it fails."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(w, threads, queue))
    proc.start()
    status, payload = queue.get()
    proc.join()
    if status != "ok":
        raise RuntimeError(f"bench train: workload {w.name!r} failed: {payload}")
    return TrainCost(**payload)


def format_table(costs: list[TrainCost], machine: str) -> str:
    """One markdown table: epoch time, tokens/s, the phase split, peak memory and the item state."""
    head = (
        "| workload | items | tokens/epoch | epoch s | tokens/s | "
        + " | ".join(f"{p} %" for p in PHASES)
        + " | peak RSS MiB | item table + AdamW MiB | memory path |"
    )
    out = [f"machine: {machine}", "", head, "|" + "---|" * (10 + len(PHASES) - 2)]
    for c in costs:
        split = [100 * c.phase_seconds[p] / c.seconds for p in PHASES]
        out.append(
            f"| {c.name} | {c.num_items} | {c.tokens_per_epoch} | {c.epoch_seconds:.1f} | {c.tokens_per_s:.0f} | "
            + " | ".join(f"{s:.0f}" for s in split)
            + f" | {c.peak_rss_mib:.0f} | {c.item_state_mib:.0f} | {'lean' if c.lean else 'standard'} |"
        )
    return "\n".join(out)


def plot(costs: list[TrainCost], path: str) -> None:
    """Two panels: time per 1k tokens split by phase, and peak memory against the item state, per workload."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4))
    names = [c.name for c in costs]
    left = np.zeros(len(costs))
    for p in PHASES:
        per_k = np.array([1e3 * c.phase_seconds[p] / c.tokens_timed * 1e3 for c in costs])
        ax1.barh(names, per_k, left=left, label=p)
        left += per_k
    ax1.invert_yaxis()
    ax1.set_xlabel("ms per 1k target tokens")
    ax1.legend(fontsize=8)
    ax1.set_title("training step by phase")
    ax2.barh(names, [c.peak_rss_mib for c in costs], color="tab:gray", label="peak RSS")
    ax2.barh(names, [c.item_state_mib for c in costs], color="tab:orange", label="item table + AdamW state")
    ax2.invert_yaxis()
    ax2.set_xscale("log")
    ax2.set_xlabel("MiB (log)")
    ax2.legend(fontsize=8)
    ax2.set_title("peak memory")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_json(costs: list[TrainCost], machine: dict, path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"machine": machine, "results": [asdict(c) for c in costs]}, f, indent=2)


def run(
    *,
    quick: bool = False,
    data_root: str | None = None,
    json_path: str = "results/bench_train.json",
    plot_path: str | None = None,
    threads: int | None = None,
    log=print,
) -> list[TrainCost]:
    """Every standard workload in its own process, one after the other; the table printed, the JSON (and the
    plot) written. A dataset whose files are not found is skipped with a line saying so."""
    import torch

    from recengine.bench import measure_machine
    from recengine.progress import progress_bar

    machine = measure_machine("cpu")
    machine_line = (
        f"{machine.name}, {threads or torch.get_num_threads()} threads, torch {machine.torch}; "
        f"GEMM {machine.gemm_gflops:.0f} GFLOP/s"
    )
    costs = []
    for w in progress_bar(standard_workloads(quick, data_root), desc="bench train", unit="workload"):
        try:
            costs.append(run_in_process(w, threads))
        except RuntimeError as exc:
            if "FileNotFoundError" not in str(exc):
                raise
            log(f"skipped {w.name}: {exc}")
    log(format_table(costs, machine_line))
    write_json(costs, asdict(machine), json_path)
    log(f"\nwrote {json_path}")
    if plot_path:
        plot(costs, plot_path)
        log(f"wrote {plot_path}")
    return costs
