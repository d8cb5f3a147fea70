"""Benchmark harness shared by `recengine bench` and the pytest-benchmark suite in benchmarks/.

A family module (recengine/bench/<family>.py) defines its standard workloads once:

    def workloads(device: str, quick: bool = False) -> list[Workload]

Each Workload names its providers up front and builds its inputs lazily (W1 alone holds GiBs),
returning one Case per provider. Providers are "recengine", "reference: <what>" or
"peer: <what>". The harness times every case in the same run, reports the speedup of recengine
over each other provider, and the fraction of the hardware bound reached: useful bytes against
the machine's measured copy bandwidth, or useful FLOPs against its measured GEMM rate.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch

from recengine.machine import describe_machine

RECENGINE = "recengine"


@dataclass
class Case:
    """One provider's timed call on one workload."""

    fn: Callable[[], object]
    #: useful bytes one call must move (bandwidth-bound ops); 0 if not stated
    bytes: float = 0.0
    #: useful FLOPs one call must do (compute-bound ops); 0 if not stated
    flops: float = 0.0
    #: items one call processes (samples, transitions, ...) to report items/s; 0 if not stated
    items: float = 0.0
    #: untimed work before each timed call (e.g. restoring state an in-place step changed)
    setup: Callable[[], object] | None = None
    #: measure the peak extra memory of one call (CPU: VmHWM reset; CUDA: allocator peak)
    measure_memory: bool = False
    #: untimed calls first; > 1 for microsecond calls whose steady state (warm caches) is what matters
    warmup: int = 1


@dataclass
class Workload:
    name: str
    providers: tuple[str, ...]
    #: builds inputs and returns {provider: Case}; a provider left out is reported as unavailable
    build: Callable[[], dict[str, Case]]
    note: str = ""


@dataclass
class Result:
    workload: str
    provider: str
    median_s: float
    p25_s: float
    p75_s: float
    repeats: int
    bytes: float = 0.0
    flops: float = 0.0
    items: float = 0.0
    gbps: float | None = None
    gflops: float | None = None
    items_per_s: float | None = None
    pct_of_bound: float | None = None
    #: this provider's time / recengine's time on the same workload (>1: recengine is faster)
    recengine_speedup: float | None = None
    peak_extra_mib: float | None = None


@dataclass
class Machine:
    device: str
    name: str
    threads: int
    torch: str
    copy_gbps: float
    gemm_gflops: float
    extra: dict = field(default_factory=dict)
    #: CPU model, kernel ISA paths, threads, versions (recengine.machine.describe_machine)
    system: dict = field(default_factory=describe_machine)


# ----------------------------------------------------------------------------------------- timing
def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_call(case: Case, device: str, repeat: int = 5, max_seconds: float = 20.0) -> list[float]:
    """Wall times of `repeat` calls after `case.warmup` untimed calls (fewer if one call is very slow)."""
    for _ in range(case.warmup):
        if case.setup:
            case.setup()
        case.fn()
    _sync(device)
    times: list[float] = []
    budget_end = time.perf_counter() + max_seconds
    for _ in range(repeat):
        if case.setup:
            case.setup()
        _sync(device)
        t0 = time.perf_counter()
        case.fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
        if time.perf_counter() > budget_end and len(times) >= 3:
            break
    return times


def rss_kib(field_name: str) -> int:
    """A memory field of /proc/self/status in KiB ("VmRSS": resident now, "VmHWM": the resident peak)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field_name} not in /proc/self/status")


def peak_extra_bytes(fn: Callable[[], object], device: str) -> float | None:
    """Peak memory one call of `fn` adds on top of what is already allocated.

    CUDA: the caching allocator's peak. CPU (Linux): reset the resident high-water mark
    (/proc/self/clear_refs = 5), run, read VmHWM - VmRSS; an estimate (the allocator may reuse
    freed pages), good to tell O(B*N) from O(B*k + block). None where neither is available.
    """
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return float(torch.cuda.max_memory_allocated() - base)
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        base = rss_kib("VmRSS")
        fn()
        return float(max(rss_kib("VmHWM") - base, 0) * 1024)
    except (OSError, RuntimeError):
        return None


# --------------------------------------------------------------------------- the machine's bounds
def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measure_machine(device: str = "cpu") -> Machine:
    """Copy bandwidth (read+write bytes of a 256 MiB tensor copy) and float32 GEMM rate, measured now."""
    n = 64 * 1024 * 1024  # 256 MiB of float32
    src = torch.ones(n, device=device)
    dst = torch.empty_like(src)
    best = float("inf")
    for _ in range(5):
        _sync(device)
        t0 = time.perf_counter()
        dst.copy_(src)
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    copy_gbps = 2 * n * 4 / best / 1e9
    del src, dst
    m = 4096 if device.startswith("cuda") else 1536
    a = torch.randn(m, m, device=device)
    b = torch.randn(m, m, device=device)
    best = float("inf")
    for _ in range(3):
        _sync(device)
        t0 = time.perf_counter()
        torch.mm(a, b)
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    gemm = 2 * m**3 / best / 1e9
    if device.startswith("cuda"):
        name = torch.cuda.get_device_name()
    else:
        name = _cpu_name()
    return Machine(
        device=device,
        name=name,
        threads=torch.get_num_threads(),
        torch=torch.__version__,
        copy_gbps=copy_gbps,
        gemm_gflops=gemm,
        extra={"cores": os.cpu_count(), "platform": platform.platform()},
    )


# -------------------------------------------------------------------------------------- running
def run_workload(w: Workload, device: str, machine: Machine, repeat: int = 5) -> list[Result]:
    cases = w.build()
    results: list[Result] = []
    for provider in w.providers:
        case = cases.get(provider)
        if case is None:
            continue
        times = time_call(case, device, repeat=repeat)
        q = statistics.quantiles(times, n=4) if len(times) >= 2 else [times[0]] * 3
        med = statistics.median(times)
        r = Result(w.name, provider, med, q[0], q[2], len(times), case.bytes, case.flops, case.items)
        if case.bytes:
            r.gbps = case.bytes / med / 1e9
            r.pct_of_bound = 100.0 * r.gbps / machine.copy_gbps
        if case.flops:
            r.gflops = case.flops / med / 1e9
            r.pct_of_bound = 100.0 * r.gflops / machine.gemm_gflops
        if case.items:
            r.items_per_s = case.items / med
        if case.measure_memory:
            if case.setup:
                case.setup()
            peak = peak_extra_bytes(case.fn, device)
            r.peak_extra_mib = None if peak is None else peak / 2**20
        results.append(r)
    ours = next((r for r in results if r.provider == RECENGINE), None)
    if ours is not None:
        for r in results:
            r.recengine_speedup = r.median_s / ours.median_s
    del cases
    return results


def format_table(results: list[Result], machine: Machine) -> str:
    head = (
        f"machine: {machine.name} ({machine.device}, {machine.threads} threads, torch {machine.torch}); "
        f"copy bandwidth {machine.copy_gbps:.1f} GB/s, GEMM {machine.gemm_gflops:.0f} GFLOP/s"
    )
    cols = [
        "workload",
        "provider",
        "median ms",
        "spread ms",
        "GB/s",
        "GFLOP/s",
        "items/s",
        "% bound",
        "recengine x",
        "peak extra MiB",
    ]
    rows = []
    for r in results:
        rows.append(
            [
                r.workload,
                r.provider,
                f"{r.median_s * 1e3:.2f}",
                f"{(r.p75_s - r.p25_s) * 1e3:.2f}",
                "" if r.gbps is None else f"{r.gbps:.2f}",
                "" if r.gflops is None else f"{r.gflops:.1f}",
                "" if r.items_per_s is None else f"{r.items_per_s:.3g}",
                "" if r.pct_of_bound is None else f"{r.pct_of_bound:.1f}",
                "" if r.recengine_speedup is None else f"{r.recengine_speedup:.2f}",
                "" if r.peak_extra_mib is None else f"{r.peak_extra_mib:.1f}",
            ]
        )
    widths = [max(len(c), *(len(row[i]) for row in rows)) if rows else len(c) for i, c in enumerate(cols)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    out = [head, "", line(cols), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(row) for row in rows]
    out.append("")
    out.append("recengine x = this provider's time / recengine's time on the same workload (>1: recengine faster)")
    return "\n".join(out)


def write_json(path: str, results: list[Result], machine: Machine, *, files: list[str] | None = None) -> None:
    """The machine and every result as JSON at `path`; `files`, when given, names the files the run wrote beside
    it (the command line's record of its output directory)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    record = {"machine": asdict(machine), "results": [asdict(r) for r in results]}
    if files is not None:
        record["files"] = files
    with open(path, "w") as f:
        json.dump(record, f, indent=2)


def plot(path: str, results: list[Result]) -> None:
    """One panel per workload: each provider's median time (log scale), recengine highlighted and each
    other bar labelled with recengine's speedup over it."""
    import math

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = list(dict.fromkeys(r.workload for r in results))
    ncols = min(3, max(len(workloads), 1))
    nrows = math.ceil(len(workloads) / ncols) if workloads else 1
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.5 * ncols, 2.6 * nrows), squeeze=False)
    for ax in axes.flat[len(workloads) :]:
        ax.axis("off")
    for ax, w in zip(axes.flat, workloads):
        rows = [r for r in results if r.workload == w]
        times = [r.median_s * 1e3 for r in rows]
        colors = ["tab:orange" if r.provider == RECENGINE else "tab:gray" for r in rows]
        ax.barh(range(len(rows)), times, color=colors)
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels([r.provider[:38] for r in rows], fontsize=7)
        ax.invert_yaxis()
        if max(times) > 20 * min(times):  # wide spread: log axis, starting below the fastest bar
            ax.set_xscale("log")
            ax.set_xlim(min(times) / 3, max(times) * 8)
            ax.set_xlabel("median ms per call (log)", fontsize=7)
        else:
            ax.set_xlim(0, max(times) * 1.25)
            ax.set_xlabel("median ms per call", fontsize=7)
        ax.set_title(w, fontsize=9)
        for i, r in enumerate(rows):
            if r.provider != RECENGINE and r.recengine_speedup is not None:
                ax.text(times[i], i, f" {r.recengine_speedup:.2g}x", va="center", fontsize=7)
    fig.suptitle("recengine (orange) against references and peers; labels: recengine's speedup", fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------- pytest-benchmark glue
def pytest_params(workloads: list[Workload]):
    """(workload, provider) pairs as pytest params, ids "<workload>-<provider>"."""
    import pytest

    return [pytest.param(w, p, id=f"{w.name}-{p}") for w in workloads for p in w.providers]


_built: dict = {}


def get_case(w: Workload, provider: str) -> Case:
    """The case for `provider`, building the workload once; keeps one workload alive at a time."""
    import pytest

    if _built.get("name") != w.name:
        _built.clear()
        _built["name"] = w.name
        _built["cases"] = w.build()
    case = _built["cases"].get(provider)
    if case is None:
        pytest.skip(f"{provider} is not available on this machine")
    return case
