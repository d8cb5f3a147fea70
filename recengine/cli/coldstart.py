"""`recengine coldstart`: the large model on items hidden from training, with ids alone and with item features
(genre, TF-IDF of titles, MiniLM embeddings); recengine.report.cold_start does the work."""

from __future__ import annotations

import argparse
import os

from recengine.cli.common import (
    add_data_root,
    add_out,
    add_quiet,
    add_torch_threads,
    check_item_text,
    check_readable_dir,
    default_out,
    non_negative_int,
    open_probability,
    positive_int,
    probability,
    report,
    set_torch_threads,
)

HELP = "the large model on items hidden from training"
"""the one line `recengine --help` shows for the command"""

DESCRIPTION = (
    "How well the large model recommends items it never saw in training (cold items): a share of the catalog is "
    "hidden from training, and the model is trained with item ids alone, +genre, +TF-IDF of the titles and "
    "+MiniLM title embeddings (the [text] extra), each judged by HR@10 / NDCG@10 with intervals on the events of "
    "the hidden items. coldstart.json and coldstart.md go to --out."
)
"""what `recengine coldstart --help` says the command does"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``coldstart`` on ``subparsers`` (from ``ArgumentParser.add_subparsers``)."""
    cs = subparsers.add_parser("coldstart", help=HELP, description=DESCRIPTION)
    cs.add_argument("--dataset", default="ml-100k", choices=["ml-100k"], help="the interactions and item titles")
    add_out(cs, "coldstart", "coldstart.json and coldstart.md")
    add_data_root(cs)
    cs.add_argument(
        "--variants",
        nargs="+",
        default=None,
        choices=["ids", "genre", "tfidf", "minilm"],
        help="the variants to train (default: all; minilm only with the [text] extra)",
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
    add_torch_threads(cs)
    add_quiet(cs)
    cs.set_defaults(func=run, check=check)
    return cs


def check(args: argparse.Namespace) -> None:
    import sys

    from recengine.cli.run_dir import overwrite_note, prepare_out

    if args.variants and "minilm" in args.variants:
        check_item_text("minilm")
    check_readable_dir("--data-root", args.data_root)
    args.out = args.out or default_out("coldstart")
    removed, kept = prepare_out("--out", args.out, overwrite=args.overwrite)
    note = overwrite_note(args.out, removed, kept)
    if note:
        print(note, file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    import math

    from recengine.data.movielens import load_movielens
    from recengine.report.cold_start import run_cold_start
    from recengine.train import SASRecConfig

    set_torch_threads(args.threads)
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
        log=(lambda *a: None) if args.quiet else print,
        **({} if args.id_dropout is None else {"id_dropout": args.id_dropout}),
    )
    print(f"wrote {os.path.join(args.out, 'coldstart.json')} and coldstart.md ({len(results['variants'])} variants)")
    return 0
