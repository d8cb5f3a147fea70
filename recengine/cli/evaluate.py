"""`recengine evaluate`: trained large models, alone and as a score ensemble, on a dataset's leave-one-out split
(recengine.report.evaluate does the work)."""

from __future__ import annotations

import argparse
import os
import sys

from recengine.cli.common import (
    UsageError,
    add_data_root,
    add_out,
    add_quiet,
    add_torch_threads,
    check_readable_dir,
    default_out,
    int_at_least,
    report,
    set_torch_threads,
)

HELP = "trained large models, alone and as an ensemble"
"""the one line `recengine --help` shows for the command"""

DESCRIPTION = (
    "Evaluate one or more trained large models (--model, a model file, training checkpoint or run directory of "
    "`recengine train`) on the dataset they were trained on, by the same protocol as training: leave-one-out, "
    "full-catalog ranking, the validation and test targets, the user's history excluded and ranked. With more "
    "than one --model their score ensemble (the sum of their scores) is evaluated too. metrics.json goes to --out."
)
"""what `recengine evaluate --help` says the command does"""

MODEL_KINDS = ("model", "training", "sharded")
"""the checkpoint kinds (recengine.serving.preflight.check_servable's) that hold the large model"""


def dataset_choices() -> tuple[str, ...]:
    """--dataset's names: `recengine train`'s but "synthetic" (a drawn dataset has no item vocabulary to check)."""
    from recengine.cli.train import DATASET_CHOICES

    return tuple(n for n in DATASET_CHOICES if n != "synthetic")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``evaluate`` on ``subparsers`` (from ``ArgumentParser.add_subparsers``)."""
    from recengine.cli.dataset_arg import add_dataset

    p = subparsers.add_parser("evaluate", help=HELP, description=DESCRIPTION)
    p.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="PATH",
        help="a trained model (model.safetensors, checkpoint.safetensors or the run directory); repeat it to "
        "evaluate several and their ensemble",
    )
    add_dataset(p, dataset_choices(), note="the data the models were trained on")
    p.add_argument(
        "--min-item-count",
        type=int_at_least(0),
        default=None,
        help="drop items with fewer interactions before splitting, as the training run did (default: the "
        "dataset's benchmark protocol)",
    )
    add_out(p, "evaluate", "metrics.json")
    add_data_root(p)
    add_torch_threads(p)
    add_quiet(p)
    p.set_defaults(func=run, check=check)
    return p


def check(args: argparse.Namespace) -> None:
    from recengine.cli.dataset_arg import check_dataset
    from recengine.cli.run_dir import overwrite_note, prepare_out
    from recengine.serving.preflight import PreflightError, check_servable

    for path in args.model:
        if not os.path.exists(path):
            raise UsageError(f"--model: {path} does not exist")
    check_readable_dir("--data-root", args.data_root)
    check_dataset(args.dataset, dataset_choices())
    for path in args.model:  # the header alone: a truncated, foreign or agent file fails before the data is read
        try:
            kind = check_servable(path)
        except PreflightError as exc:
            raise UsageError(f"--model: {exc}") from None
        if kind not in MODEL_KINDS:
            raise UsageError(f"--model: {path} holds a {kind}, not the large model")
    args.out = args.out or default_out("evaluate")
    removed, kept = prepare_out("--out", args.out, overwrite=args.overwrite)
    note = overwrite_note(args.out, removed, kept)
    if note:
        print(note, file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from recengine.report.evaluate import evaluate_command

    set_torch_threads(args.threads)
    log = (lambda *a, **k: None) if args.quiet else print
    try:
        evaluate_command(
            args.dataset, args.model, args.out, data_root=args.data_root, min_item_count=args.min_item_count, log=log
        )
    except (FileNotFoundError, ValueError) as exc:
        return report("recengine evaluate", exc)
    if args.quiet:
        print(f"wrote {args.out}/metrics.json")
    return 0
