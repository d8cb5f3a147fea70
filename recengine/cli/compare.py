"""`recengine compare`: every registered agent in the simulator fitted to the train split, one report
(recengine.report.compare does the work)."""

from __future__ import annotations

import argparse

from recengine.cli.common import (
    UsageError,
    add_config,
    add_data_root,
    add_item_text,
    add_torch_threads,
    check_item_text,
    check_readable_dir,
    check_writable_dir,
    non_negative_int,
    positive_int,
)

HELP = "compare every agent in a simulator fitted to the data"
"""the one line `recengine --help` shows for the command"""

DESCRIPTION = (
    "Every registered agent in the simulator fitted to the train split, trained and measured on the same simulated "
    "sessions, the simulator validated against the held-out data: report.md, results.json, learning curves and "
    "simulator.safetensors go to --out."
)
"""what `recengine compare --help` says the command does"""


def _agent_list(text: str) -> list[str]:
    """--agents A,B,...: the names, blanks dropped."""
    return [name.strip() for name in text.split(",") if name.strip()]


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``compare`` on ``subparsers`` (from ``ArgumentParser.add_subparsers``)."""
    c = subparsers.add_parser("compare", help=HELP, description=DESCRIPTION)
    c.add_argument("--out", default="runs/compare", metavar="DIR", help="where report.md, results.json, PNGs go")
    c.add_argument(
        "--dataset",
        default="ml-100k",
        choices=["ml-100k", "ml-1m", "synthetic"],
        help="data the simulator and the large model are fitted to (MovieLens falls back to synthetic)",
    )
    add_data_root(c)
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
    add_config(c, "CompareConfig")
    add_item_text(c)
    c.set_defaults(func=run, check=check)
    return c


def agent_names() -> list[str]:
    """The registered agents, in registry order."""
    from recengine.agents.registry import registered

    return list(registered())


def check(args: argparse.Namespace) -> None:
    from recengine.report.compare import compare_config_from_args

    cfg = compare_config_from_args(args)  # a bad --config file fails before anything runs
    check_item_text(cfg.item_text)
    check_readable_dir("--data-root", cfg.data_root)
    known = agent_names()
    unknown = [name for name in cfg.agents if name not in known]
    if unknown or not cfg.agents:
        raise UsageError(
            f"--agents: unknown agent(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(known)}"
        )
    check_writable_dir("--out", cfg.out)  # last: it creates the directory


def run(args: argparse.Namespace) -> int:
    from recengine.report.compare import main_from_args

    return main_from_args(args)
