"""`recengine bench`: every operator family's standard workloads timed against the pure-PyTorch reference, one
table, a JSON file and optionally a bar chart; `bench serving` and `bench distributed` hand over to their own
harnesses."""

from __future__ import annotations

import argparse
import importlib
import sys

from recengine.cli.common import (
    UsageError,
    add_torch_threads,
    check_writable_file,
    device_name,
    positive_int,
    report,
    set_torch_threads,
)

HELP = "time the operators against their PyTorch reference"
"""the one line `recengine --help` shows for the command"""

DESCRIPTION = (
    "Time every operator family's standard workloads (embedding_bag, policy, replay, ope), recengine's kernels "
    "against their pure-PyTorch reference: a table, a JSON file and optionally a bar chart. 'bench serving' times "
    "a trained model, 'bench distributed' the data-parallel step on 1 vs 2 processes, 'bench train' the large "
    "model's training cost by phase on the benchmark datasets and on catalogs of 10k-1M items."
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
    b.add_argument("--json", default=None, help="where to write the results (default results/bench_<device>.json)")
    b.add_argument("--plot", default=None, metavar="FILE", help="also write a bar chart (PNG)")
    b.add_argument("--checkpoint", default=None, metavar="PATH", help="'bench serving': the trained model to serve")
    b.add_argument("--data-root", default=None, metavar="DIR", help="'bench train': where beauty.txt lies")
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


def json_path(args: argparse.Namespace) -> str:
    """Where the results go: --json, else results/bench_<device kind>.json."""
    return args.json or f"results/bench_{args.device.split(':')[0]}.json"


def check(args: argparse.Namespace) -> None:
    check_writable_file("--json", json_path(args))
    check_writable_file("--plot", args.plot)
    if args.soak is not None and (args.families or []) != ["serving"]:
        raise UsageError("--soak: a fault soak of the HTTP endpoint, only with 'bench serving'")
    if args.checkpoint is not None or (args.families or []) == ["serving"]:
        _check_checkpoint(args.checkpoint)


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
    import torch

    from recengine import bench
    from recengine.progress import progress_bar

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        return report("recengine bench", UsageError(f"--device {args.device}: torch sees no CUDA device"))
    set_torch_threads(args.threads)
    families = args.families or list(BENCH_FAMILIES)
    if families == ["serving"]:  # needs a trained model: not one of the synthetic workload families
        from recengine.bench import serving

        if not args.checkpoint:
            print("error: bench serving needs --checkpoint (a `recengine train` output dir)", file=sys.stderr)
            return 2
        if args.soak is not None:
            from recengine.bench import soak

            return soak.main(
                ["--checkpoint", args.checkpoint, "--seconds", str(args.soak)]
                + (["--json", args.json] if args.json else [])
            )
        argv = ["--checkpoint", args.checkpoint] + (["--quick"] if args.quick else [])
        argv += ["--threads", str(args.threads)] if args.threads else []
        return serving.main(argv + (["--json", args.json] if args.json else []))
    if families == ["train"]:  # whole training steps, each workload in its own process
        from recengine.bench import train

        path = args.json or "results/bench_train.json"
        train.run(quick=args.quick, data_root=args.data_root, json_path=path, plot_path=args.plot, threads=args.threads)
        return 0
    if families == ["distributed"]:  # starts its own processes: not one of the in-process workload families
        from recengine.bench import distributed

        argv = (["--quick"] if args.quick else []) + ["--steps", str(args.repeat)]
        return distributed.main(argv + (["--json", args.json] if args.json else []))
    unknown = [f for f in families if f not in BENCH_FAMILIES]
    if unknown:
        return report(
            "recengine bench", UsageError(f"unknown benchmark family {unknown}; choose from {list(BENCH_FAMILIES)}")
        )
    machine = bench.measure_machine(args.device)
    workloads = []
    for fam in families:
        module = importlib.import_module(BENCH_FAMILIES[fam])
        workloads += module.workloads(args.device, quick=args.quick)
    results = []
    for w in progress_bar(workloads, desc="bench", unit="workload", file=sys.stderr):
        results += bench.run_workload(w, args.device, machine, repeat=args.repeat)
    print(bench.format_table(results, machine))
    path = json_path(args)
    bench.write_json(path, results, machine)
    print(f"\nwrote {path}")
    if args.plot:
        bench.plot(args.plot, results)
        print(f"wrote {args.plot}")
    return 0
