"""`recengine compare`: every registered agent in the simulator calibrated from the data, one report.

    run_compare(CompareConfig(out="runs/compare"))        # what the CLI does

Steps: load the data (ml-100k, or the synthetic set, also the fallback when ml-100k cannot be fetched), fit the
sequence-aware simulator to its leave-one-out TRAIN split only (recengine.env.fit_simulator: a user response model
with its own seed and training run, sessions from the train timestamps), pre-train the large model when an agent
starts from it, then for every agent of the registry (recengine.agents.registry) and every training seed: build it,
train it in the feedback loop when it learns, and measure it greedily: return per session, CTR, catalogue coverage,
slate diversity, updates/s, and HR@10 / NDCG@10 on the data's leave-one-out test split for agents with a model of
the data. Every agent of a training seed is evaluated on the same simulated sessions, so besides each return's
interval the report gives its paired difference from the popularity baseline and from the large model, session by
session (recengine.report.pooling); a target counts as met only when that interval lies above 0. Off-policy
estimates (IPS / SNIPS / DR from logs of an epsilon-greedy logging policy) are set against each target's true on-
policy value. The simulator is validated against the real held-out data (recengine.judging.simulator_validation) and
the verdict "a hybrid beats the large model" is re-checked in other simulators (recengine.report.robustness). Two
oracles that read the simulator's model play every seed's evaluation sessions beside the agents, giving the headroom
over the large model, each hybrid's closed share and the headroom with each mechanism off (recengine.report.headroom).
Writes results.json, report.md, learning_curves.png, headroom.png and the fitted simulator (simulator.safetensors,
reloaded by recengine.env.load_simulator) into the output directory.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict

import torch

from recengine.agents.entry import CompareSetup
from recengine.agents.registry import lookup
from recengine.env import save_simulator
from recengine.eval.metrics import NDCG_AT_10
from recengine.machine import describe_machine
from recengine.report import beyond_accuracy, headroom
from recengine.report.arena import Arena, run_agent
from recengine.report.compare_config import CompareConfig
from recengine.report.phases import PhaseClock
from recengine.report.pooling import STATISTICS_NOTE, add_paired_differences, combine_seeds
from recengine.report.robustness import robustness_checks, verdict
from recengine.report.validation import validate_simulator

Log = Callable[..., None]

SIMULATOR_FILE = "simulator.safetensors"
"""the fitted simulator, saved in the output directory (recengine.env.load_simulator reads it back)"""


def run_compare(cfg: CompareConfig, log: Log = print, *, written_before: tuple[str, ...] = ()) -> dict:
    """Run every agent of `cfg.agents` for `cfg.seeds` training seeds, write the report; returns results.json's
    content. The caller's global torch RNG state is left as it was (the run draws from its own, seeded copy).
    `written_before` names files the caller already wrote into `cfg.out` for this run (the command line's
    config.json); results.json's "files" lists them and every file the run writes, nothing else."""
    if cfg.seeds < 1:
        raise ValueError(f"seeds: need at least one training seed, got {cfg.seeds}")
    entries = [lookup(name) for name in cfg.agents]
    os.makedirs(cfg.out, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)  # modules built from the global generator (encoders, tables) start alike
        return _run(cfg, entries, log, written_before)


def _run(cfg: CompareConfig, entries: list, log: Log, written_before: tuple[str, ...] = ()) -> dict:
    clock = PhaseClock()
    with clock("data and simulator fit"):
        setup, fallback = prepare(cfg, log)
    arena = Arena.of(setup)
    pretrain_info = {}
    if any(e.needs_pretrained for e in entries):
        with clock("large model training"):
            pretrain_info = pretrain(setup, log)

    per_seed: dict[str, list[dict]] = {entry.name: [] for entry in entries}
    policies: dict[str, object] = {}  # seed 0's, for the off-policy evaluation
    for seed_index in range(cfg.seeds):
        for entry in entries:
            with clock(f"agent {entry.name}"):
                row, policy = run_agent(entry, setup, arena, seed_index, log)
            per_seed[entry.name].append(row)
            policies.setdefault(entry.name, policy)
    agents = {name: combine_seeds(rows, cfg.ci_level) for name, rows in per_seed.items()}
    beyond_accuracy.add_beyond_accuracy(agents, per_seed, cfg.ci_level)
    add_paired_differences(agents, per_seed, cfg.ci_level)
    log_summary(agents, log)
    oracles, oracle_rows = {}, {}
    if cfg.oracles:
        with clock("oracles"):
            oracle_rows = run_oracles(setup, arena, log)
        oracles = {name: combine_seeds(rows, cfg.ci_level) for name, rows in oracle_rows.items()}
        shared = headroom.first_sessions(per_seed, headroom.oracle_sessions(cfg))  # the sessions both played
        add_paired_differences(oracles, {**shared, **oracle_rows}, cfg.ci_level)
        log_summary(oracles, log)
    with clock("off-policy evaluation"):
        ope = off_policy_evaluation(setup, policies, log)
    targets, evidence = check_targets(agents, ope)
    with clock("simulator validation"):
        validation = validate_simulator(setup, policies, agents, pretrain_info.get("test"), log)
    gap = {}
    if cfg.oracles:
        gap = headroom.main_headroom({**per_seed, **oracle_rows}, cfg.ci_level)
        if cfg.headroom_mechanisms:
            with clock("headroom by mechanism"):
                gap.update(headroom.mechanisms_and_checks(setup, policies, log))
    robust = {}
    if cfg.robustness:
        with clock("robustness checks"):
            factories = headroom.oracle_factories(setup) if cfg.oracles else None
            robust = robustness_checks(setup, policies, log, oracles=factories)
    save_simulator(setup.simulator, os.path.join(cfg.out, SIMULATOR_FILE))
    results = {
        "meta": run_meta(setup, fallback, clock),
        "pretrain": pretrain_info,
        "agents": agents,
        "oracles": oracles,
        "headroom": gap,
        "ope": ope,
        "targets": targets,
        "target_evidence": evidence,
        "simulator_validation": validation,
        "robustness": robust,
        "rl_vs_large_model": verdict(agents, robust),
        "simulator_file": SIMULATOR_FILE,
        "plots": [],
        "beyond_accuracy": beyond_accuracy.summary(),
        "files": [*written_before, SIMULATOR_FILE],
    }
    write_report(cfg.out, results, clock, log)
    return results


# ------------------------------------------------------------------------------------------- the steps
def load_data(cfg: CompareConfig, log: Log = print):
    """(dataset, fallback message or None); a path is your own data (recengine.data.local), never replaced."""
    from recengine.data import load_local, load_movielens, make_synthetic
    from recengine.report.compare_config import DATASET_NAMES

    def synthetic():
        return make_synthetic(num_users=cfg.synthetic_users, num_items=cfg.synthetic_items, seed=cfg.seed)

    if cfg.dataset == "synthetic":
        return synthetic(), None
    if cfg.dataset not in DATASET_NAMES:
        return load_local(cfg.dataset), None
    try:
        return load_movielens(cfg.dataset, root=cfg.data_root), None
    except Exception as exc:  # no network, no cache, a malformed file: say so and carry on
        msg = (
            f"could not load {cfg.dataset} ({type(exc).__name__}: {exc}); FALLING BACK to the synthetic "
            f"dataset ({cfg.synthetic_users} users, {cfg.synthetic_items} items) — the figures below are "
            "NOT ml-100k figures"
        )
        log(f"warning: {msg}")
        return synthetic(), msg


def build_simulator(data, split, cfg: CompareConfig):
    """The sequence-aware simulator fitted to the TRAIN part of `split` (a small response model in quick mode),
    with its own seed (cfg.simulator_seed), apart from the agents'."""
    from recengine.env import fit_simulator
    from recengine.env.response_model import response_model_config

    response = dataclasses.replace(
        response_model_config(cfg.quick, cfg.simulator_seed), max_epochs=cfg.simulator_epochs
    )
    return fit_simulator(data, split, config=cfg.simulator_config(), seed=cfg.simulator_seed, response_config=response)


def prepare(cfg: CompareConfig, log: Log) -> tuple[CompareSetup, str | None]:
    """The data, its leave-one-out split and the simulator fitted to it; (setup, fallback message or None)."""
    from recengine.data import histories_of, leave_one_out
    from recengine.train import SASRecConfig

    data, fallback = load_data(cfg, log)
    split = leave_one_out(histories_of(data))
    log(f"data: {data.name}, {data.num_users} users, {data.num_items} items, {data.num_interactions} interactions")
    t = time.perf_counter()
    simulator = build_simulator(data, split, cfg)
    log(f"simulator fitted to {data.name} in {time.perf_counter() - t:.0f}s")
    sasrec = SASRecConfig(
        dim=cfg.pretrain_dim,
        max_len=cfg.pretrain_max_len,
        num_layers=cfg.pretrain_layers,
        max_seconds=float("inf"),
        max_epochs=cfg.pretrain_epochs,
        patience=5,
        seed=cfg.seed,
        item_text=cfg.item_text,
    )
    return CompareSetup(data, split, simulator, cfg, None, sasrec), fallback


def pretrain(setup: CompareSetup, log: Log) -> dict:
    """Supervised training of the large model into setup.pretrained; returns how it went."""
    from recengine.agents.hybrid import pretrain as train_large_model

    t = time.perf_counter()
    result = train_large_model(
        setup.data, setup.sasrec, split=setup.split, progress=setup.settings.progress, log=lambda *a: None
    )
    setup.pretrained = result.model
    info = {
        "epochs": len(result.history),
        "seconds": round(time.perf_counter() - t, 1),
        "test": result.test,
        "stopped": result.stopped,
    }
    log(
        f"large model pre-trained: {len(result.history)} epochs in {info['seconds']}s, "
        f"test ndcg@10 {result.test[NDCG_AT_10]:.4f}"
    )
    return info


def run_oracles(setup: CompareSetup, arena: Arena, log: Log) -> dict[str, list[dict]]:
    """Both oracles on every training seed's evaluation sessions (those the agents play): name -> per-seed rows."""
    rows: dict[str, list[dict]] = {name: [] for name in headroom.ORACLES}
    for seed_index in range(setup.settings.seeds):
        for name, factory in headroom.oracle_factories(setup).items():
            rows[name].append(headroom.run_oracle(name, factory, setup, arena, seed_index, log))
    return rows


def log_summary(agents: dict, log: Log) -> None:
    """One line per agent: return per session, its paired differences and learning-curve gain, with intervals."""
    for name, entry in agents.items():
        line = (
            f"{name:18s} return/session {entry['avg_return']:.3f} [{entry['return_ci95'][0]:.3f}, "
            f"{entry['return_ci95'][1]:.3f}]"
        )
        for base, d in entry["paired"].items():
            line += f"  vs {base} {d['diff']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]"
            if "seed_ci95" in d:
                line += f" (seeds [{d['seed_ci95'][0]:+.3f}, {d['seed_ci95'][1]:+.3f}])"
        if entry.get("curve_gain"):
            g = entry["curve_gain"]
            line += f"  curve gain {g['diff']:+.3f} [{g['ci95'][0]:+.3f}, {g['ci95'][1]:+.3f}]"
        log(line)


def off_policy_evaluation(setup: CompareSetup, policies: dict, log: Log) -> dict:
    """IPS / SNIPS / DR estimates of each OPE target's value from epsilon-greedy logs, against its true value."""
    from recengine.judging.simulated_ope import ope_check

    cfg = setup.settings
    ope = {
        "logging_policy": f"epsilon-greedy around the target, epsilon={cfg.ope_epsilon}",
        "sessions": cfg.ope_sessions,
        "targets": {},
    }
    for name in cfg.ope_targets:
        if name not in policies:
            continue
        t = time.perf_counter()
        res = ope_check(
            setup.simulator,
            policies[name],
            epsilon=cfg.ope_epsilon,
            num_sessions=cfg.ope_sessions,
            seed=cfg.seed + 31,
            num_envs=256,
        )
        estimates = {e: res[e] for e in ("ips", "snips", "dr")}
        ope["targets"][name] = {
            "true_value": res["true_return"],
            "true_stderr": res["true_stderr"],
            "estimates": estimates,
            "relative_error": {e: res[f"rel_err_{e}"] for e in estimates},
            "num_sessions": cfg.ope_sessions,
            "logged_steps": res["num_steps"],
            "ess": res["ess"],
        }
        log(
            f"OPE {name}: true {res['true_return']:.3f}  "
            + "  ".join(f"{e} {v:.3f} ({res[f'rel_err_{e}']:.1%})" for e, v in estimates.items())
            + f"  ({time.perf_counter() - t:.0f}s)"
        )
    return ope


def check_targets(agents: dict, ope: dict) -> tuple[dict, dict]:
    """(whether each target is met, True / False / None = not measured; the paired differences behind each).

    A comparison is met when the lower bound of one of its paired differences' intervals is above 0 (both the
    sessions' and, with several seeds, the seeds' interval)."""

    def paired(a: str, b: str) -> dict | None:
        return agents[a]["paired"].get(b) if a in agents and b in agents else None

    def met(diffs: list[dict]) -> bool | None:
        return any(d["ci95"][0] > 0 and d.get("seed_ci95", [1.0])[0] > 0 for d in diffs) if diffs else None

    evidence = {
        "DQN beats popularity (return/session)": [paired("dqn", "popularity")],
        "REINFORCE beats popularity (return/session)": [paired("reinforce", "popularity")],
        "a hybrid beats the large model alone (return/session)": [
            paired("hybrid-dqn", "large-model"),
            paired("hybrid-reinforce", "large-model"),
            paired("hybrid-slateq", "large-model"),
        ],
        "DQN learns (last learning-curve point above the first)": [
            agents["dqn"]["curve_gain"] if "dqn" in agents else None
        ],
    }
    evidence = {text: [d for d in diffs if d is not None] for text, diffs in evidence.items()}
    targets = {text: met(diffs) for text, diffs in evidence.items()}
    best_ope = [min(row["relative_error"].values()) for row in ope["targets"].values()]
    targets["OPE within 10% of the on-policy value (best estimator, every target)"] = (
        all(e <= 0.10 for e in best_ope) if best_ope else None
    )
    return targets, evidence


def run_meta(setup: CompareSetup, fallback: str | None, clock: PhaseClock) -> dict:
    """results.json's "meta": what was run, on what, with which settings."""
    cfg, data = setup.settings, setup.data
    return {
        "dataset": data.name,
        "requested_dataset": cfg.dataset,
        "fallback": fallback,
        "quick": cfg.quick,
        "seed": cfg.seed,
        "num_users": data.num_users,
        "num_items": setup.num_items,
        "slate_size": cfg.slate_size,
        "history_len": cfg.history_len,
        "eval_sessions": cfg.eval_sessions,
        "seeds": cfg.seeds,
        "ci_level": cfg.ci_level,
        "statistics": STATISTICS_NOTE,
        "rl_steps": cfg.rl_steps,
        "num_envs": cfg.num_envs,
        "simulator": f"sequence-aware simulator fitted to the train split of {data.name} (response model, "
        "slate choice with no-click, fitted session lengths, genre fatigue)",
        "machine": describe_machine(),
        "wall_seconds": clock.elapsed(),
        "phases": clock.table(),
        "config": json.loads(json.dumps(asdict(cfg), default=str)),
    }


def write_report(out: str, results: dict, clock: PhaseClock, log: Log) -> None:
    """learning_curves.png, headroom.png, accuracy_vs_diversity.png, results.json and report.md into `out`;
    results["files"] gains each file written."""
    from recengine.report import writer

    if writer.plot_curves(os.path.join(out, "learning_curves.png"), results):
        results["plots"].append("learning_curves.png")
    if headroom.plot_returns(os.path.join(out, headroom.PLOT_FILE), results):
        results["headroom"]["plot"] = headroom.PLOT_FILE
    beyond_accuracy.write_plot(out, results)  # accuracy_vs_diversity.png, named in results["beyond_accuracy"]
    plot = (results.get("beyond_accuracy") or {}).get("plot")
    results.setdefault("files", [])
    headroom_plot = (results.get("headroom") or {}).get("plot")
    results["files"] += [
        *results["plots"],
        *([headroom_plot] if headroom_plot else []),
        *([plot] if plot else []),
        "results.json",
        "report.md",
    ]
    results["meta"]["wall_seconds"] = clock.elapsed()
    results["meta"]["phases"] = clock.table()
    writer.write_json(os.path.join(out, "results.json"), results)
    writer.write_markdown(os.path.join(out, "report.md"), results)
    log(f"wrote {out}: {', '.join(results['files'])} in {results['meta']['wall_seconds']:.0f}s")


def compare_config_from_args(args) -> CompareConfig:
    """The run's settings: the defaults, shrunk by ``--quick`` (or ``quick = true`` in the file), then the values of
    the ``--config`` file, then the flags named like a CompareConfig field: every such flag without a file, only the
    ones given explicitly (``args.given``) with one. A bad file raises ``ConfigFileError`` naming the key and file."""
    from dataclasses import fields

    from recengine.config_file import apply_values, read_config_file

    config_path = getattr(args, "config", None)
    file_values = read_config_file(config_path) if config_path else {}
    cfg = CompareConfig()
    if args.quick or file_values.get("quick") is True:
        cfg.quick_settings()
    if file_values:
        cfg = apply_values(cfg, file_values, source=config_path)
    given = getattr(args, "given", None) if config_path else None
    for field in fields(CompareConfig):
        value = getattr(args, field.name, None)
        if value is not None and value is not False and (given is None or field.name in given):
            setattr(cfg, field.name, tuple(value) if isinstance(value, list) else value)
    if getattr(args, "no_robustness", False):
        cfg.robustness = False
    cfg.check()
    return cfg


def main_from_args(args) -> int:
    """The `recengine compare` subcommand; the resolved settings go to ``config.json`` in the output directory."""
    from recengine.config_file import RESOLVED_CONFIG, write_resolved_config

    cfg = compare_config_from_args(args)
    write_resolved_config(cfg, cfg.out)
    if args.threads:
        torch.set_num_threads(args.threads)
    quiet = getattr(args, "quiet", False)
    log = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    results = run_compare(cfg, log=log, written_before=(RESOLVED_CONFIG,))
    if quiet:  # the closing line (the log says it otherwise)
        print(f"wrote {cfg.out}: {', '.join(results['files'])}")
    return 0
