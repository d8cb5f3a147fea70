"""Where does a larger headroom over the large model appear? The large model and both oracles in the compare
simulator with each mechanism at several strengths, beside the statistic of the real sessions that mechanism should
match (so a strength can be judged consistent with the data or not).

    python benchmarks/headroom_sweep.py --out runs/headroom [--sessions 512] [--quick] [--cache DIR]

Fits the default compare simulator and large model on ml-100k (or reloads them from --cache, where a first run
saves them), then for every (mechanism, strength) plays the large model, the myopic and the lookahead oracle on the
same sessions. Writes sweep.json and sweep.md into --out and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

SWEEP = {
    "main simulator": {},
    "genre fatigue off": {"fatigue_weight": 0.0},
    "genre fatigue x2": {"fatigue_weight": 2.0},
    "genre fatigue x4": {"fatigue_weight": 4.0},
    "genre fatigue x4, slower decay (0.95)": {"fatigue_weight": 4.0, "fatigue_decay": 0.95},
    "leave hazard off": {"hazard_scale": 0.0},
    "leave hazard x0.5": {"hazard_scale": 0.5},
    "leave hazard x2": {"hazard_scale": 2.0},
    "no-click quit off": {"no_click_quit": 0.0},
    "no-click quit x0.5": {"no_click_quit": 0.05},
    "no-click quit x2": {"no_click_quit": 0.2},
    "evolving state off": {"evolving_state": False},
    "fatigue x4, hazard off, no-click quit x0.5": {"fatigue_weight": 4.0, "hazard_scale": 0.0, "no_click_quit": 0.05},
}
"""label -> the SeqSimConfig changes of that point (the main simulator: fatigue 1, hazard x1, no-click quit 0.1)"""


def fitted(cache: str | None, quick: bool):
    """(setup, large model policy): the compare defaults' simulator and large model, from the cache when there."""
    from recengine.agents.baselines import SupervisedPolicy
    from recengine.agents.hybrid import scorer_from_model
    from recengine.env import load_simulator, save_simulator
    from recengine.report.compare import prepare, pretrain
    from recengine.report.compare_config import CompareConfig
    from recengine.train.sasrec_checkpoint import load_model, save_model

    cfg = CompareConfig(progress=False)
    if quick:
        cfg.quick_settings()
    torch.manual_seed(cfg.seed)
    sim_file = cache and os.path.join(cache, "simulator.safetensors")
    model_file = cache and os.path.join(cache, "large_model.safetensors")
    if cache and os.path.exists(sim_file) and os.path.exists(model_file):
        from recengine.agents.entry import CompareSetup
        from recengine.data import histories_of, leave_one_out
        from recengine.report.compare import load_data

        data, _ = load_data(cfg)
        setup = CompareSetup(data, leave_one_out(histories_of(data)), load_simulator(sim_file), cfg, None, None)
        setup.pretrained, _ = load_model(model_file)
    else:
        setup, _ = prepare(cfg, print)
        pretrain(setup, print)
        if cache:
            os.makedirs(cache, exist_ok=True)
            save_simulator(setup.simulator, sim_file)
            save_model(model_file, setup.pretrained, setup.sasrec, setup.data.name)
    return setup, SupervisedPolicy(scorer_from_model(setup.pretrained), cfg.slate_size)


def main() -> None:
    from recengine.judging import mechanism_check as mc
    from recengine.machine import describe_machine
    from recengine.report import headroom as hr

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="runs/headroom")
    ap.add_argument("--sessions", type=int, default=512)
    ap.add_argument("--cache", default=None, help="where the fitted simulator and large model are kept")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default=None, help="comma-separated labels of SWEEP to run")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    setup, large = fitted(args.cache, args.quick)
    sim, cfg = setup.simulator, setup.settings
    real = mc.real_session_stats(setup.split, sim.item_genres, seed=cfg.seed)
    factories = hr.oracle_factories(setup)
    rows = {}
    labels = SWEEP if not args.only else {k: SWEEP[k] for k in args.only.split(",")}
    for label, changes in labels.items():
        t, cpu = time.perf_counter(), time.process_time()
        variant = hr.without(sim, **changes) if changes else sim
        recorder = mc.ClickRecorder(args.sessions)
        returns = hr.judge_on(
            variant, {"large-model": large}, factories, args.sessions, cfg.seed + 999, {"large-model": recorder}
        )
        row = hr.headroom(returns, cfg.ci_level)
        row["changes"] = changes
        row["simulated_large_model"] = mc.simulated_session_stats(recorder, sim.item_genres, seed=cfg.seed)
        row["wall_s"], row["cpu_s"] = time.perf_counter() - t, time.process_time() - cpu
        rows[label] = row
        print(
            f"{label}: large {row['large_model']:.3f} myopic {row['myopic']:.3f} lookahead {row['lookahead']:.3f} "
            f"headroom {row['headroom']['diff']:+.3f} ({row['headroom_relative']:.0%}) planning "
            f"{row['value_of_planning']['diff']:+.3f}; sim consecutive same genre "
            f"{row['simulated_large_model']['consecutive_same_genre']:.3f} (real {real['consecutive_same_genre']:.3f}) "
            f"({row['wall_s']:.0f}s wall, {row['cpu_s']:.0f}s CPU)",
            flush=True,
        )
    lines = [
        f"Sweep over {args.sessions} sessions per point, lookahead budget {cfg.lookahead}; real train sittings: "
        f"consecutive items sharing a genre {real['consecutive_same_genre']:.3f}, any two "
        f"{real['any_pair_same_genre']:.3f}, mean ratings per sitting {real['mean_length']:.1f}.",
        "",
        "| simulator | large model | oracle-myopic | oracle-lookahead | headroom [95% CI] | headroom / large model "
        "| value of planning [95% CI] | consecutive same genre (sim) | clicks per session with a click (sim) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, row in rows.items():
        s = row["simulated_large_model"]
        lines.append(
            f"| {label} | {row['large_model']:.3f} | {row['myopic']:.3f} | {row['lookahead']:.3f} | "
            f"{hr._ci(row['headroom'])} | {row['headroom_relative']:.0%} | {hr._ci(row['value_of_planning'])} | "
            f"{s['consecutive_same_genre']:.3f} | {s['mean_length']:.2f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    with open(os.path.join(args.out, "sweep.md"), "w") as f:
        f.write(text)
    with open(os.path.join(args.out, "sweep.json"), "w") as f:
        json.dump(
            {"real": real, "rows": rows, "sessions": args.sessions, "machine": describe_machine()},
            f,
            indent=2,
            default=lambda x: float(x) if isinstance(x, np.floating) else str(x),
        )


if __name__ == "__main__":
    main()
