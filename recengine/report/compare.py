"""`recengine compare`: every registered agent in the simulator calibrated from the data, one report.

    run_compare(CompareConfig(out="runs/compare"))        # what the CLI does

Steps: load the data (ml-100k, or the synthetic set, also the fallback when ml-100k cannot be fetched), fit
the simulator's users to it (recengine.env.from_movielens), pre-train the large model when an agent starts from
it, then for every agent of the registry (recengine.agents.registry) and every training seed: build it, train
it in the feedback loop when it learns, and measure it greedily: return per session, CTR, catalogue coverage,
slate diversity, updates/s, and HR@10 / NDCG@10 on the data's leave-one-out test split for agents with a model
of the data. Every agent of a training seed is evaluated on the same simulated sessions, so besides each
return's interval the report gives its paired difference from the popularity baseline and from the large model,
session by session (recengine.report.pooling); a target counts as met only when that interval lies above 0.
Off-policy estimates (IPS / SNIPS / DR from logs of an epsilon-greedy logging policy) are set against each
target's true on-policy value. Writes results.json, report.md and learning_curves.png into the output directory.
"""
from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from recengine.agents.config import LoopConfig
from recengine.agents.registry import AgentEntry, CompareSetup, lookup
from recengine.eval.stats import mean_ci
from recengine.report.compare_config import CompareConfig
from recengine.report.pooling import STATISTICS_NOTE, add_paired_differences, combine_seeds

Log = Callable[..., None]


def run_compare(cfg: CompareConfig, log: Log = print) -> dict:
    """Run every agent of `cfg.agents` for `cfg.seeds` training seeds, write the report; returns results.json's
    content."""
    if cfg.seeds < 1:
        raise ValueError(f"seeds: need at least one training seed, got {cfg.seeds}")
    entries = [lookup(name) for name in cfg.agents]
    os.makedirs(cfg.out, exist_ok=True)
    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    setup, fallback = prepare(cfg, log)
    arena = Arena.of(setup)
    pretrain_info = pretrain(setup, log) if any(e.needs_pretrained for e in entries) else {}

    per_seed: dict[str, list[dict]] = {entry.name: [] for entry in entries}
    policies: dict[str, object] = {}          # seed 0's, for the off-policy evaluation
    for seed_index in range(cfg.seeds):
        for entry in entries:
            row, policy = run_agent(entry, setup, arena, seed_index, log)
            per_seed[entry.name].append(row)
            policies.setdefault(entry.name, policy)
    agents = {name: combine_seeds(rows, cfg.ci_level) for name, rows in per_seed.items()}
    add_paired_differences(agents, per_seed, cfg.ci_level)
    log_summary(agents, log)
    ope = off_policy_evaluation(setup, policies, log)
    targets, evidence = check_targets(agents, ope)
    results = {"meta": run_meta(setup, fallback, start), "pretrain": pretrain_info, "agents": agents, "ope": ope,
               "targets": targets, "target_evidence": evidence, "plots": []}
    write_report(cfg.out, results, start, log)
    return results


# ------------------------------------------------------------------------------------------- the steps
def load_data(cfg: CompareConfig, log: Log = print):
    """(dataset, fallback message or None)."""
    from recengine.data import load_movielens, make_synthetic

    def synthetic():
        return make_synthetic(num_users=cfg.synthetic_users, num_items=cfg.synthetic_items, seed=cfg.seed)

    if cfg.dataset == "synthetic":
        return synthetic(), None
    try:
        return load_movielens(cfg.dataset, root=cfg.data_root), None
    except Exception as exc:  # no network, no cache, a malformed file: say so and carry on
        msg = (f"could not load {cfg.dataset} ({type(exc).__name__}: {exc}); FALLING BACK to the synthetic "
               f"dataset ({cfg.synthetic_users} users, {cfg.synthetic_items} items) — the figures below are "
               "NOT ml-100k figures")
        log(f"warning: {msg}")
        return synthetic(), msg


def build_simulator(data, cfg: CompareConfig):
    """The user model fitted to `data` (fewer fitting epochs in quick mode)."""
    from recengine.env import SimConfig, from_movielens

    sim_cfg = SimConfig(slate_size=cfg.slate_size, history_len=cfg.history_len, max_steps=cfg.max_session_steps)
    return from_movielens(data, config=sim_cfg, seed=cfg.seed, epochs=60 if cfg.quick else 150)


def prepare(cfg: CompareConfig, log: Log) -> tuple[CompareSetup, str | None]:
    """The data, its leave-one-out split and the simulator fitted to it; (setup, fallback message or None)."""
    from recengine.data import histories_of, leave_one_out
    from recengine.train import SASRecConfig

    data, fallback = load_data(cfg, log)
    split = leave_one_out(histories_of(data))
    log(f"data: {data.name}, {data.num_users} users, {data.num_items} items, {data.num_interactions} interactions")
    t = time.perf_counter()
    simulator = build_simulator(data, cfg)
    log(f"simulator fitted to {data.name} in {time.perf_counter() - t:.0f}s")
    sasrec = SASRecConfig(dim=64, max_len=cfg.pretrain_max_len, num_layers=2, max_seconds=cfg.pretrain_seconds,
                          max_epochs=200, patience=5, seed=cfg.seed)
    return CompareSetup(data, split, simulator, cfg, None, sasrec), fallback


@dataclass
class Arena:
    """The simulated users every agent meets: training, learning-curve and final-evaluation batches."""

    train: object
    curve: object
    evaluation: object
    item_vectors: torch.Tensor
    """the simulator's item vectors (slate diversity)"""

    @classmethod
    def of(cls, setup: CompareSetup) -> Arena:
        from recengine.env import VecRecSim

        sim, cfg = setup.simulator, setup.settings
        return cls(VecRecSim(sim, cfg.num_envs), VecRecSim(sim, cfg.curve_sessions), VecRecSim(sim, cfg.eval_sessions),
                   torch.as_tensor(sim.item_factors, dtype=torch.float32))


def pretrain(setup: CompareSetup, log: Log) -> dict:
    """Supervised training of the large model into setup.pretrained; returns how it went."""
    from recengine.agents.hybrid import pretrain as train_large_model

    t = time.perf_counter()
    result = train_large_model(setup.data, setup.sasrec, split=setup.split, progress=setup.settings.progress,
                               log=lambda *a: None)
    setup.pretrained = result.model
    info = {"epochs": len(result.history), "seconds": round(time.perf_counter() - t, 1), "test": result.test,
            "stopped": result.stopped}
    log(f"large model pre-trained: {len(result.history)} epochs in {info['seconds']}s, "
        f"test ndcg@10 {result.test['ndcg@10']:.4f}")
    return info


def run_agent(entry: AgentEntry, setup: CompareSetup, arena: Arena, seed_index: int, log: Log) -> tuple[dict, object]:
    """Build, train (when it learns) and evaluate one agent for training seed `seed_index`; (its row, its policy).

    Every agent of a seed is evaluated on the same sessions (eval seed cfg.seed + 999 + 1000 · seed_index)."""
    from recengine.agents.loop import evaluate, train

    cfg = setup.settings
    seed = cfg.seed + seed_index
    t = time.perf_counter()
    built = entry.build(setup, seed)
    row = {"updates_per_s": None, "updates": 0, "train_seconds": None, "hr@10": None, "ndcg@10": None,
           "curve": [], "curve_gain": None}
    if getattr(built.policy, "learns", False):
        loop_cfg = LoopConfig(num_envs=cfg.num_envs, total_steps=cfg.rl_steps.get(entry.name, 0),
                              slate_size=cfg.slate_size, eval_every=cfg.eval_every, eval_sessions=cfg.curve_sessions,
                              seed=seed, progress=cfg.progress)
        run = train(built.policy, arena.train, loop_cfg, eval_env=arena.curve, item_vectors=arena.item_vectors,
                    desc=f"{entry.name} (seed {seed})", eval_seed=12345 + 1000 * seed_index)
        row.update({key: run[key] for key in ("updates_per_s", "updates", "train_seconds", "curve", "curve_gain")})
    metrics = evaluate(built.policy, arena.evaluation, seed=cfg.seed + 999 + 1000 * seed_index,
                       item_vectors=arena.item_vectors)
    row.update({key: metrics[key] for key in ("avg_return", "ctr", "coverage", "diversity", "avg_session_length",
                                              "session_returns")})
    if built.offline is not None:
        row.update(built.offline())
    row["wall_seconds"] = time.perf_counter() - t
    ci = mean_ci(row["session_returns"], cfg.ci_level)
    log(f"{entry.name:18s} seed {seed}: return/session {ci['mean']:.3f} ± {ci['ci_high'] - ci['mean']:.3f}  "
        f"ctr {row['ctr']:.3f}  coverage {row['coverage']:.3f}  ({row['wall_seconds']:.0f}s)")
    return row, built.policy


def log_summary(agents: dict, log: Log) -> None:
    """One line per agent: return per session, its paired differences and learning-curve gain, with intervals."""
    for name, entry in agents.items():
        line = f"{name:18s} return/session {entry['avg_return']:.3f} [{entry['return_ci95'][0]:.3f}, " \
               f"{entry['return_ci95'][1]:.3f}]"
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
    from recengine.eval.ope import ope_check

    cfg = setup.settings
    ope = {"logging_policy": f"epsilon-greedy around the target, epsilon={cfg.ope_epsilon}",
           "sessions": cfg.ope_sessions, "targets": {}}
    for name in cfg.ope_targets:
        if name not in policies:
            continue
        t = time.perf_counter()
        res = ope_check(setup.simulator, policies[name], epsilon=cfg.ope_epsilon, num_sessions=cfg.ope_sessions,
                        seed=cfg.seed + 31, num_envs=256)
        estimates = {e: res[e] for e in ("ips", "snips", "dr")}
        ope["targets"][name] = {"true_value": res["true_return"], "true_stderr": res["true_stderr"],
                                "estimates": estimates,
                                "relative_error": {e: res[f"rel_err_{e}"] for e in estimates},
                                "num_sessions": cfg.ope_sessions, "logged_steps": res["num_steps"],
                                "ess": res["ess"]}
        log(f"OPE {name}: true {res['true_return']:.3f}  " + "  ".join(
            f"{e} {v:.3f} ({res[f'rel_err_{e}']:.1%})" for e, v in estimates.items()) +
            f"  ({time.perf_counter() - t:.0f}s)")
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
        "a hybrid beats the large model alone (return/session)":
            [paired("hybrid-dqn", "large-model"), paired("hybrid-reinforce", "large-model")],
        "DQN learns (last learning-curve point above the first)":
            [agents["dqn"]["curve_gain"] if "dqn" in agents else None],
    }
    evidence = {text: [d for d in diffs if d is not None] for text, diffs in evidence.items()}
    targets = {text: met(diffs) for text, diffs in evidence.items()}
    best_ope = [min(row["relative_error"].values()) for row in ope["targets"].values()]
    targets["OPE within 10% of the on-policy value (best estimator, every target)"] = \
        all(e <= 0.10 for e in best_ope) if best_ope else None
    return targets, evidence


def run_meta(setup: CompareSetup, fallback: str | None, start: float) -> dict:
    """results.json's "meta": what was run, on what, with which settings."""
    cfg, data = setup.settings, setup.data
    return {"dataset": data.name, "requested_dataset": cfg.dataset, "fallback": fallback, "quick": cfg.quick,
            "seed": cfg.seed, "num_users": data.num_users, "num_items": setup.num_items, "slate_size": cfg.slate_size,
            "history_len": cfg.history_len, "eval_sessions": cfg.eval_sessions,
            "seeds": cfg.seeds, "ci_level": cfg.ci_level, "statistics": STATISTICS_NOTE,
            "rl_steps": cfg.rl_steps, "num_envs": cfg.num_envs,
            "simulator": f"VecRecSim fitted to {data.name} (logistic MF, MNL choice, genre fatigue)",
            "machine": f"{platform.machine()} {os.cpu_count()} cores, torch {torch.__version__}, "
                       f"{torch.get_num_threads()} threads",
            "wall_seconds": time.perf_counter() - start,
            "config": json.loads(json.dumps(asdict(cfg), default=str))}


def write_report(out: str, results: dict, start: float, log: Log) -> None:
    """learning_curves.png, results.json and report.md into `out`."""
    from recengine.report import writer

    if writer.plot_curves(os.path.join(out, "learning_curves.png"), results):
        results["plots"].append("learning_curves.png")
    results["meta"]["wall_seconds"] = time.perf_counter() - start
    writer.write_json(os.path.join(out, "results.json"), results)
    writer.write_markdown(os.path.join(out, "report.md"), results)
    log(f"wrote {out}/report.md, results.json, learning_curves.png in {results['meta']['wall_seconds']:.0f}s")


def main_from_args(args) -> int:
    """The `recengine compare` subcommand."""
    cfg = CompareConfig(out=args.out, dataset=args.dataset, data_root=args.data_root, seed=args.seed)
    if args.quick:
        cfg.quick_settings()
    if getattr(args, "seeds", None) is not None:
        cfg.seeds = args.seeds
    if args.threads:
        torch.set_num_threads(args.threads)
    run_compare(cfg, log=lambda *a: print(*a, flush=True))
    return 0
