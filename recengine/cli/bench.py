"""`recengine bench`: every operator family's standard workloads timed against the pure-PyTorch reference, one
table, a JSON file and optionally a bar chart; `bench serving` and `bench distributed` hand over to their own
harnesses."""

from __future__ import annotations

import argparse
import importlib
import sys

from recengine.cli.common import (
    UsageError,
    add_data_root,
    add_out,
    add_quiet,
    add_torch_threads,
    check_readable_dir,
    default_out,
    device_name,
    did_you_mean,
    positive_int,
    set_torch_threads,
)

HELP = "time the operators against their PyTorch reference"
"""the one line `recengine --help` shows for the command"""

DESCRIPTION = (
    "Time every operator family's standard workloads (embedding_bag, policy, quantized_tables, replay, ope), "
    "recengine's kernels against their pure-PyTorch reference in the same run: a table on stdout, bench.json (and "
    "bench.png with --plot) in --out. 'bench serving' times a trained model, 'bench distributed' the data-parallel "
    "step on 1 vs 2 processes, 'bench train' the large model's training cost by phase on the benchmark datasets and "
    "on catalogs of 10k-1M items."
)
"""what `recengine bench --help` says the command does"""

# family name on the command line -> module defining workloads(device, quick)
BENCH_FAMILIES = {
    "embedding_bag": "recengine.bench.embedding_bag",
    "policy": "recengine.bench.policy",
    "quantized_tables": "recengine.bench.quantized_tables",
    "replay": "recengine.bench.replay",
    "ope": "recengine.bench.ope",
}


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``bench`` on ``subparsers`` (from ``ArgumentParser.add_subparsers``)."""
    b = subparsers.add_parser("bench", help=HELP, description=DESCRIPTION)
    add_out(b, "bench", "bench.json (and bench.png)")
    b.add_argument(
        "families",
        nargs="*",
        help=f"families to run (default: all of {list(BENCH_FAMILIES)}; "
        "'distributed' alone runs W1 on 1 vs 2 processes, 'train' alone the large model's training cost by phase "
        "and catalog size, 'serving' alone "
        "times a trained model given by --checkpoint)",
    )
    b.add_argument("--device", default="cpu", type=device_name, help="cpu, cuda or cuda:<index>")
    b.add_argument("--quick", action="store_true", help="small workloads (a smoke run, not the standard figures)")
    b.add_argument("--repeat", type=positive_int, default=5, help="timed calls per case (median reported)")
    add_torch_threads(b)
    b.add_argument("--plot", action="store_true", help="also write a bar chart, bench.png in --out")
    b.add_argument("--checkpoint", default=None, metavar="PATH", help="'bench serving': the trained model to serve")
    add_data_root(
        b, help="'bench train': where beauty.txt lies (default: $RECENGINE_DATA; the dataset is skipped when absent)"
    )
    add_quiet(b)
    b.add_argument(
        "--soak",
        type=positive_int,
        default=None,
        metavar="SECONDS",
        help="'bench serving': instead of the timings, a fault soak of the HTTP endpoint for SECONDS (mixed and "
        "malformed traffic from 32 clients, a model swap every minute, one bad checkpoint)",
    )
    b.set_defaults(func=run, check=check)
    return b


JSON_FILE = "bench.json"
"""the results, in --out"""
PLOT_FILE = "bench.png"
"""the bar chart (--plot), in --out"""

HARNESSES = ("serving", "train", "distributed")
"""the families that run alone, each in its own harness"""


def json_path(args: argparse.Namespace) -> str:
    """Where the results go: bench.json in --out."""
    import os

    return os.path.join(args.out, JSON_FILE)


def plot_path(args: argparse.Namespace) -> str | None:
    """Where the bar chart goes (bench.png in --out), None without --plot."""
    import os

    return os.path.join(args.out, PLOT_FILE) if args.plot else None


def check(args: argparse.Namespace) -> None:
    from recengine.cli.run_dir import overwrite_note, prepare_out

    check_readable_dir("--data-root", args.data_root)
    families = args.families or []
    unknown = [f for f in families if f not in BENCH_FAMILIES and f not in HARNESSES]
    if unknown:
        raise UsageError(
            f"unknown benchmark family {unknown[0]!r}{did_you_mean(unknown[0], [*BENCH_FAMILIES, *HARNESSES])}; "
            f"choose from {', '.join([*BENCH_FAMILIES, *HARNESSES])}"
        )
    alone = [f for f in families if f in HARNESSES]
    if alone and len(families) > 1:
        raise UsageError(f"'{alone[0]}' runs alone: give it without other families")
    if args.soak is not None and families != ["serving"]:
        raise UsageError("--soak: a fault soak of the HTTP endpoint, only with 'bench serving'")
    if args.checkpoint is not None or families == ["serving"]:
        _check_checkpoint(args.checkpoint)
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise UsageError(f"--device {args.device}: torch sees no CUDA device")
    args.out = args.out or default_out("bench")
    removed, kept = prepare_out("--out", args.out, overwrite=args.overwrite)
    note = overwrite_note(args.out, removed, kept)
    if note:
        print(note, file=sys.stderr)


def _check_checkpoint(path: str | None) -> None:
    """'bench serving' times a trained model: --checkpoint must name one (checked from its header, before any
    work)."""
    if not path:
        raise UsageError("--checkpoint: 'bench serving' needs a trained model (a `recengine train` output dir)")
    from recengine.serving.preflight import PreflightError, check_servable

    try:
        check_servable(path)
    except PreflightError as exc:
        raise UsageError(f"--checkpoint: {exc}") from None


def run(args: argparse.Namespace) -> int:

    from recengine import bench
    from recengine.progress import progress_bar

    set_torch_threads(args.threads)
    families = args.families or list(BENCH_FAMILIES)
    if families == ["serving"]:  # needs a trained model: not one of the synthetic workload families
        from recengine.bench import serving

        if args.soak is not None:
            from recengine.bench import soak

            return soak.main(["--checkpoint", args.checkpoint, "--seconds", str(args.soak), "--json", json_path(args)])
        argv = ["--checkpoint", args.checkpoint] + (["--quick"] if args.quick else [])
        argv += ["--threads", str(args.threads)] if args.threads else []
        return serving.main(argv + ["--json", json_path(args)])
    if families == ["train"]:  # whole training steps, each workload in its own process
        from recengine.bench import train

        train.run(
            quick=args.quick,
            data_root=args.data_root,
            json_path=json_path(args),
            plot_path=plot_path(args),
            threads=args.threads,
        )
        return 0
    if families == ["distributed"]:  # starts its own processes: not one of the in-process workload families
        from recengine.bench import distributed

        argv = (["--quick"] if args.quick else []) + ["--steps", str(args.repeat)]
        return distributed.main(argv + ["--json", json_path(args)])
    machine = bench.measure_machine(args.device)
    workloads = []
    for fam in families:
        module = importlib.import_module(BENCH_FAMILIES[fam])
        workloads += module.workloads(args.device, quick=args.quick)
    results = []
    for w in progress_bar(workloads, desc="bench", unit="workload", file=sys.stderr):
        results += bench.run_workload(w, args.device, machine, repeat=args.repeat)
    print(bench.format_table(results, machine))
    files = [JSON_FILE] + ([PLOT_FILE] if args.plot else [])
    bench.write_json(json_path(args), results, machine, files=files)
    if args.plot:
        bench.plot(plot_path(args), results)
    print(f"\nwrote {args.out}: {', '.join(files)}")
    return 0
