"""`recengine compare`: every registered agent in the simulator fitted to the train split, one report
(recengine.report.compare does the work)."""

from __future__ import annotations

import argparse

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
    did_you_mean,
    non_negative_int,
    positive_int,
)

HELP = "compare every agent in a simulator fitted to the data"
"""the one line `recengine --help` shows for the command"""

DESCRIPTION = (
    "Compare every registered agent (baselines, the large model, RL from scratch, RL fine-tuning the large model) in "
    "a user simulator fitted to the train split of the data (a benchmark dataset, or your own with --dataset PATH): "
    "each agent is trained and measured on the same simulated sessions, with paired differences and intervals, and "
    "the simulator is validated against the held-out data. report.md (opening with a five-line summary), "
    "results.json, the plots and simulator.safetensors go to --out. The full run takes about a quarter of an hour "
    "on a laptop CPU; --quick is a smoke run of under a minute whose report states no verdicts."
)
"""what `recengine compare --help` says the command does"""


DATASET_NAMES = ("ml-100k", "ml-1m", "synthetic")
"""--dataset's names: recengine.report.compare_config.DATASET_NAMES (spelled out: the parser imports no torch); any
other value is a path to your own data"""


def _agent_list(text: str) -> list[str]:
    """--agents A,B,...: the names, blanks dropped."""
    return [name.strip() for name in text.split(",") if name.strip()]


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``compare`` on ``subparsers`` (from ``ArgumentParser.add_subparsers``)."""
    from recengine.cli.dataset_arg import add_dataset

    c = subparsers.add_parser("compare", help=HELP, description=DESCRIPTION)
    add_out(c, "compare", "report.md, results.json, the plots and simulator.safetensors")
    add_dataset(
        c,
        DATASET_NAMES,
        note="the simulator and the large model are fitted to it; MovieLens falls back "
        "to synthetic when it cannot be loaded",
    )
    add_data_root(c)
    c.add_argument(
        "--quick",
        action="store_true",
        help="smoke run of under a minute: tiny budgets, the report says so in a banner and states no verdicts",
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
        type=_agent_list,
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
    add_torch_threads(c)
    add_quiet(c)
    add_config(c, "CompareConfig")
    add_item_text(c)
    c.set_defaults(func=run, check=check)
    return c


def agent_names() -> list[str]:
    """The registered agents, in registry order."""
    from recengine.agents.registry import registered

    return list(registered())


def check(args: argparse.Namespace) -> None:
    import sys

    from recengine.cli.dataset_arg import check_dataset
    from recengine.cli.run_dir import overwrite_note, prepare_out
    from recengine.report.compare import compare_config_from_args

    if args.dataset is not None:  # before the config, whose check would only say "an existing path"
        check_dataset(args.dataset, DATASET_NAMES)
    if args.out is None and not _file_sets_out(args.config):
        args.out = default_out("compare")
        if getattr(args, "given", None) is not None:
            args.given.add("out")  # the resolved default counts as given: a --config file's out yields to it
    cfg = compare_config_from_args(args)  # a bad --config file fails before anything runs
    check_dataset(cfg.dataset, DATASET_NAMES)
    if cfg.dataset not in DATASET_NAMES:  # your own file: read it now, so a malformed one stops the run here
        from recengine.data import load_local

        try:
            load_local(cfg.dataset)
        except (ValueError, FileNotFoundError) as exc:
            raise UsageError(f"--dataset: {exc}") from None
    check_item_text(cfg.item_text)
    check_readable_dir("--data-root", cfg.data_root)
    known = agent_names()
    unknown = [name for name in cfg.agents if name not in known]
    if unknown or not cfg.agents:
        hint = did_you_mean(unknown[0], known) if unknown else ""
        raise UsageError(
            f"--agents: unknown agent(s) {', '.join(unknown) or '(none given)'}{hint}; known: {', '.join(known)}"
        )
    args.out = cfg.out
    removed, kept = prepare_out("--out", cfg.out, overwrite=args.overwrite)  # last: every other check passed
    note = overwrite_note(cfg.out, removed, kept)
    if note:
        print(note, file=sys.stderr)


def _file_sets_out(config: str | None) -> bool:
    """Whether the --config file (if any) names the output directory (then it is the default, not a new one)."""
    if not config:
        return False
    from recengine.config_file import read_config_file

    return "out" in read_config_file(config)


def run(args: argparse.Namespace) -> int:
    from recengine.report.compare import main_from_args

    return main_from_args(args)
