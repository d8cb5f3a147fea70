"""`recengine train sasrec`: train the large model (the SASRec-style encoder) on MovieLens or synthetic data,
evaluate it against the Pop and BPR baselines, write the run directory; data-parallel with --nproc or torchrun."""

from __future__ import annotations

import argparse
import ast
import functools
import importlib.util
import os
import sys

from recengine.cli.common import (
    UsageError,
    add_config,
    add_data_root,
    add_item_text,
    add_out,
    add_quiet,
    add_torch_threads,
    check_item_text,
    check_readable_dir,
    default_out,
    int_at_least,
    non_negative_int,
    positive_float,
    positive_int,
    probability,
    report,
    seconds,
    set_torch_threads,
)

HELP = "train the large model (SASRec); Pop and BPR baselines"
"""the one line `recengine --help` shows for the command"""

DESCRIPTION = (
    "Train the large model (a SASRec-style Transformer encoder over each user's history) on a benchmark dataset, "
    "synthetic data or your own (--dataset PATH: a RecBole atomic directory, a `user item` sequence file, or a "
    "Parquet/CSV log of user, item, timestamp columns) and evaluate it against the Pop and BPR baselines (HR@10, "
    "NDCG@10, MRR@10; leave-one-out, full ranking): the checkpoint, metrics.json and curve.png go to --out. "
    "--resume continues a run from its checkpoint; --nproc or torchrun trains data-parallel."
)
"""what `recengine train --help` says the command does"""

#: the SASRecConfig fields set by a flag of the same name (their defaults are None: SASRecConfig's own apply)
CONFIG_FLAGS = (
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
)


DATASET_CHOICES = ("ml-100k", "ml-1m", "ml-20m", "ml-25m", "beauty", "synthetic")
"""--dataset's names: recengine.data.DATASETS and "synthetic" (spelled out: the parser imports no torch); any other
value is a path to your own data"""


@functools.lru_cache(maxsize=1)
def config_fields() -> dict[str, tuple[object, str]]:
    """SASRecConfig's fields: name -> (default, its docstring's first line), read from its source
    (recengine/train/config.py) without importing it: importing it loads torch, and building the parser, `--help`
    and a usage error must stay instant."""
    package = importlib.util.find_spec("recengine")  # not recengine.train's spec: that would import the package
    source = os.path.join(os.path.dirname(package.origin), "train", "config.py")
    with open(source, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "SASRecConfig")
    out = {}
    for node, after in zip(cls.body, [*cls.body[1:], None]):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            doc = after.value.value if isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant) else ""
            out[node.target.id] = (ast.literal_eval(node.value), " ".join(str(doc).split()))
    return out


def config_defaults() -> dict[str, object]:
    """SASRecConfig's field defaults (``config_fields``)."""
    return {name: default for name, (default, _) in config_fields().items()}


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``train`` on ``subparsers`` (from ``ArgumentParser.add_subparsers``)."""
    from recengine.cli.dataset_arg import add_dataset

    t = subparsers.add_parser("train", help=HELP, description=DESCRIPTION)
    t.add_argument("model", choices=["sasrec"], help="the model to train (the large model, SASRec-style)")
    add_dataset(t, DATASET_CHOICES, note="beauty: beauty.txt under --data-root")
    t.add_argument(
        "--min-item-count",
        type=int_at_least(0),
        default=None,
        help="drop items with fewer interactions before splitting (default: the dataset's benchmark protocol, "
        "5 for ml-1m / ml-20m / ml-25m, else 0)",
    )
    add_out(t, "train", "the checkpoint, metrics.json and curve.png")
    add_data_root(t)
    t.add_argument(
        "--resume", action="store_true", help="continue the run in --out (given explicitly) from its checkpoint"
    )
    t.add_argument("--no-baselines", action="store_true", help="skip the Pop and BPR figures")
    t.add_argument("--bpr-epochs", type=positive_int, default=40, help="epochs of the MF/BPR baseline")
    fields = config_fields()
    for name, typ in CONFIG_FLAGS:
        default, doc = fields[name.replace("-", "_")]
        t.add_argument(f"--{name}", type=typ, default=None, help=f"{doc or name} (default: {default})")
    add_item_text(t)
    t.add_argument("--synthetic-users", type=int_at_least(2), default=1000, help="users of --dataset synthetic")
    t.add_argument("--synthetic-items", type=int_at_least(2), default=500, help="items of --dataset synthetic")
    add_torch_threads(t)
    add_quiet(t)
    add_config(t, "SASRecConfig")
    t.add_argument(
        "--nproc",
        type=positive_int,
        default=1,
        help="data-parallel training on this many local processes (gloo; tables sharded); under torchrun the "
        "world comes from torchrun",
    )
    t.set_defaults(func=run, check=check)
    return t


def train_config(args: argparse.Namespace):
    """The SASRecConfig of the run: its defaults, then the --config file's values, then the flags given."""
    from recengine.train import SASRecConfig

    overrides = {
        k: getattr(args, k)
        for k in [name.replace("-", "_") for name, _ in CONFIG_FLAGS] + ["item_text"]
        if getattr(args, k, None) is not None
    }
    if getattr(args, "config", None):  # the file's values, then the flags given (their defaults are None)
        from dataclasses import replace

        from recengine.config_file import load_config

        return replace(load_config(SASRecConfig(), args.config), **overrides)
    return SASRecConfig(**overrides)


def torchrun_world() -> int:
    """The world size torchrun started this process in (1 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def check(args: argparse.Namespace) -> None:
    from recengine.cli.dataset_arg import check_dataset
    from recengine.cli.run_dir import overwrite_note, prepare_out
    from recengine.train.sasrec import CHECKPOINT
    from recengine.train.sasrec_checkpoint import load_training_state

    cfg = train_config(args)  # a bad combination of settings fails before anything is written
    check_item_text(args.item_text)
    check_readable_dir("--data-root", args.data_root)
    check_dataset(args.dataset, DATASET_CHOICES)
    if args.resume and (args.nproc > 1 or torchrun_world() > 1):
        raise UsageError("--resume: a data-parallel run (--nproc > 1 or torchrun) does not resume")
    if args.out is None:
        if args.resume:
            raise UsageError("--resume: name the run to continue with --out DIR")
        if torchrun_world() > 1:
            raise UsageError("--out: under torchrun every process must write to the same directory; name it")
        args.out = default_out("train")
    if args.resume and args.overwrite:
        raise UsageError("--overwrite: --resume continues the run in --out; it cannot also replace it")
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
    if int(os.environ.get("RANK", "0") or 0) != 0:  # rank 0 alone checks and clears the directory it reports in
        return
    removed, kept = prepare_out("--out", args.out, overwrite=args.overwrite, keep=args.resume)
    note = overwrite_note(args.out, removed, kept)
    if note:
        print(note, file=sys.stderr)


def _distributed_trainer(args: argparse.Namespace):
    """The trainer for `train_command` when training is data-parallel, else None. Under torchrun, the ranks
    other than 0 train here and return False (rank 0 alone reports)."""
    import functools

    from recengine.distributed import train_sasrec as ddp

    if torchrun_world() > 1:
        if int(os.environ.get("RANK", "0")) != 0:
            cfg = train_config(args)
            synthetic = {"num_users": args.synthetic_users, "num_items": args.synthetic_items}
            data = ddp.load_training_data(
                args.dataset,
                cfg,
                data_root=args.data_root,
                synthetic_kwargs=synthetic,
                min_item_count=args.min_item_count,
            )
            ddp.train_sasrec_torchrun(data, cfg, out_dir=args.out, progress=False)
            return False
        return ddp.train_sasrec_torchrun
    if args.nproc > 1:
        return functools.partial(ddp.train_sasrec_distributed, nproc=args.nproc)
    return None


def run(args: argparse.Namespace) -> int:
    from recengine.config_file import RESOLVED_CONFIG, write_resolved_config
    from recengine.report.train import train_command

    set_torch_threads(args.threads)
    synthetic = {"num_users": args.synthetic_users, "num_items": args.synthetic_items}
    cfg = train_config(args)
    write_resolved_config(cfg, args.out)
    log = (lambda *a, **k: None) if args.quiet else print
    try:
        trainer = _distributed_trainer(args)
        if trainer is False:  # a torchrun rank other than 0: it trained its share, rank 0 reports
            return 0
        metrics = train_command(
            args.dataset,
            args.out,
            cfg,
            data_root=args.data_root,
            baselines=not args.no_baselines,
            bpr_epochs=args.bpr_epochs,
            resume=args.resume,
            synthetic_kwargs=synthetic,
            min_item_count=args.min_item_count,
            progress=not args.quiet,
            log=log,
            written_before=(RESOLVED_CONFIG,),
            **({"trainer": trainer} if trainer else {}),
        )
    except (FileNotFoundError, ValueError) as exc:  # missing or malformed data, a bad checkpoint: a user error
        return report("recengine train", exc)
    if args.quiet:  # the closing line (the log says it otherwise)
        print(f"wrote {args.out}: {', '.join(metrics['files'])}")
    return 0
