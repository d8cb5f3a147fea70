"""The `recengine` command line."""
from __future__ import annotations

import argparse
import importlib
import sys

# family name on the command line -> module defining workloads(device, quick)
BENCH_FAMILIES = {
    "embedding": "recengine.bench.embedding",
    "policy": "recengine.bench.policy",
    "replay": "recengine.bench.replay",
}


def _bench(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from recengine import bench

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("error: --device cuda asked for, but torch sees no CUDA device", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    families = args.families or list(BENCH_FAMILIES)
    unknown = [f for f in families if f not in BENCH_FAMILIES]
    if unknown:
        print(f"error: unknown benchmark family {unknown}; choose from {list(BENCH_FAMILIES)}", file=sys.stderr)
        return 2
    machine = bench.measure_machine(args.device)
    workloads = []
    for fam in families:
        module = importlib.import_module(BENCH_FAMILIES[fam])
        workloads += module.workloads(args.device, quick=args.quick)
    results = []
    for w in tqdm(workloads, desc="bench", unit="workload", file=sys.stderr):
        results += bench.run_workload(w, args.device, machine, repeat=args.repeat)
    print(bench.format_table(results, machine))
    json_path = args.json or f"results/bench_{args.device.split(':')[0]}.json"
    bench.write_json(json_path, results, machine)
    print(f"\nwrote {json_path}")
    if args.plot:
        bench.plot(args.plot, results)
        print(f"wrote {args.plot}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="recengine", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("bench", help="time every operator against its pure-PyTorch reference")
    b.add_argument("families", nargs="*", help=f"families to run (default: all of {list(BENCH_FAMILIES)})")
    b.add_argument("--device", default="cpu", help="cpu or cuda")
    b.add_argument("--quick", action="store_true", help="small workloads (a smoke run, not the standard figures)")
    b.add_argument("--repeat", type=int, default=5, help="timed calls per case (median reported)")
    b.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    b.add_argument("--json", default=None, help="where to write the results (default results/bench_<device>.json)")
    b.add_argument("--plot", default=None, metavar="FILE", help="also write a bar chart (PNG)")
    b.set_defaults(func=_bench)

    # further commands register here (train, compare, ...)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
