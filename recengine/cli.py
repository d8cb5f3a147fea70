"""The `recengine` command line."""
from __future__ import annotations

import argparse
import importlib
import sys

# family name on the command line -> module defining workloads(device, quick)
BENCH_FAMILIES = {
    "embedding_bag": "recengine.bench.embedding_bag",
    "policy": "recengine.bench.policy",
    "replay": "recengine.bench.replay",
    "ope": "recengine.bench.ope",
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
    if families == ["serving"]:  # needs a trained model: not one of the synthetic workload families
        from recengine.bench import serving

        if not args.checkpoint:
            print("error: bench serving needs --checkpoint (a `recengine train` output dir)", file=sys.stderr)
            return 2
        argv = ["--checkpoint", args.checkpoint] + (["--quick"] if args.quick else [])
        return serving.main(argv + (["--json", args.json] if args.json else []))
    if families == ["distributed"]:  # starts its own processes: not one of the in-process workload families
        from recengine.bench import distributed

        argv = (["--quick"] if args.quick else []) + ["--steps", str(args.repeat)]
        return distributed.main(argv + (["--json", args.json] if args.json else []))
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


def _serve(args: argparse.Namespace) -> int:
    import os

    if not os.path.exists(args.checkpoint):
        print(f"error: --checkpoint: {args.checkpoint} does not exist", file=sys.stderr)
        return 2
    from recengine.serving.threads import set_wait_policy

    set_wait_policy(args.omp_wait_policy)  # before torch starts its OpenMP threads
    from recengine.serving.http import serve

    serve(args.checkpoint, host=args.host, port=args.port, dtype=args.dtype, max_batch=args.max_batch,
          max_wait_ms=args.max_wait_ms, threads=args.threads or None)
    return 0


def _train(args: argparse.Namespace) -> int:
    import torch

    from recengine.report.train import train_command
    from recengine.train import SASRecConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = {k: getattr(args, k) for k in ("dim", "max_len", "num_layers", "dropout", "lr", "batch_size",
                                               "max_epochs", "patience", "max_seconds", "seed")
                 if getattr(args, k) is not None}
    cfg = SASRecConfig(**overrides)
    synthetic = {"num_users": args.synthetic_users, "num_items": args.synthetic_items}
    try:
        train_command(args.dataset, args.out, cfg, data_root=args.data_root, baselines=not args.no_baselines,
                      bpr_epochs=args.bpr_epochs, resume=args.resume, synthetic_kwargs=synthetic)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _compare(args: argparse.Namespace) -> int:
    from recengine.report.compare import main_from_args

    return main_from_args(args)


def _add_data_root(parser: argparse.ArgumentParser) -> None:
    """--data-root (with --root, its older spelling, as a hidden alias): where the MovieLens files lie."""
    parser.add_argument("--data-root", dest="data_root", default=None, metavar="DIR",
                        help="directory with ml-100k (default: $RECENGINE_DATA, then the cached recbole wheel)")
    parser.add_argument("--root", dest="data_root", default=None, help=argparse.SUPPRESS)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="recengine", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("bench", help="time every operator against its pure-PyTorch reference")
    b.add_argument("families", nargs="*", help=f"families to run (default: all of {list(BENCH_FAMILIES)}; 'distributed' alone runs W1 on 1 vs 2 processes, 'serving' alone times a trained model)")
    b.add_argument("--device", default="cpu", help="cpu or cuda")
    b.add_argument("--quick", action="store_true", help="small workloads (a smoke run, not the standard figures)")
    b.add_argument("--repeat", type=int, default=5, help="timed calls per case (median reported)")
    b.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    b.add_argument("--json", default=None, help="where to write the results (default results/bench_<device>.json)")
    b.add_argument("--plot", default=None, metavar="FILE", help="also write a bar chart (PNG)")
    b.add_argument("--checkpoint", default=None, metavar="PATH", help="'bench serving': the trained model to serve")
    b.set_defaults(func=_bench)

    t = sub.add_parser("train", help="train the large model (SASRec-style encoder), evaluate it against Pop and BPR")
    t.add_argument("model", choices=["sasrec"])
    t.add_argument("--dataset", default="ml-100k", choices=["ml-100k", "synthetic"])
    t.add_argument("--out", required=True, metavar="DIR", help="checkpoint, metrics.json and curve.png go here")
    _add_data_root(t)
    t.add_argument("--resume", action="store_true", help="continue from DIR/checkpoint.safetensors")
    t.add_argument("--no-baselines", action="store_true", help="skip the Pop and BPR figures")
    t.add_argument("--bpr-epochs", type=int, default=40)
    for name, typ in (("dim", int), ("max-len", int), ("num-layers", int), ("dropout", float), ("lr", float),
                      ("batch-size", int), ("max-epochs", int), ("patience", int), ("max-seconds", float),
                      ("seed", int)):
        t.add_argument(f"--{name}", type=typ, default=None, help="(default: SASRecConfig)")
    t.add_argument("--synthetic-users", type=int, default=1000)
    t.add_argument("--synthetic-items", type=int, default=500)
    t.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    t.set_defaults(func=_train)

    c = sub.add_parser("compare", help="every registered agent in the simulator fitted to the train split: report.md, "
                                          "results.json, curves, simulator.safetensors")
    c.add_argument("--out", default="runs/compare", metavar="DIR", help="where report.md, results.json, PNGs go")
    c.add_argument("--dataset", default="ml-100k", choices=["ml-100k", "synthetic"],
                   help="data the simulator and the large model are fitted to (ml-100k falls back to synthetic)")
    _add_data_root(c)
    c.add_argument("--quick", action="store_true",
                   help="smoke run of about two minutes (tiny budgets; not the real figures)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--seeds", type=int, default=None,
                   help="training seeds per learning agent, intervals pooled over them and an interval over seeds "
                        "(default 1 for time; use 5 before drawing a conclusion)")
    c.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    c.set_defaults(func=_compare)

    from recengine.report import ope as ope_command

    ope_command.add_parser(sub)

    s = sub.add_parser("serve", help="serve a trained model over HTTP (POST /recommend; needs the [serve] extra)")
    s.add_argument("--checkpoint", required=True, metavar="PATH", help="a `recengine train` output dir or model file")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    s.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    s.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "int8"],
                   help="inference tables (default: %(default)s)")
    s.add_argument("--max-batch", type=int, default=256, help="requests merged into one call (default: %(default)s)")
    s.add_argument("--max-wait-ms", type=float, default=2.0,
                   help="how long a request waits to share a batch (default: %(default)s)")
    s.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    s.add_argument("--omp-wait-policy", default="passive", choices=["passive", "active"],
                   help="OpenMP idle threads sleep (passive: fair beside busy neighbours) or spin (default: %(default)s)")
    s.set_defaults(func=_serve)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
