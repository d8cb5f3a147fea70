"""Validate the sequence-aware simulator on ml-100k: fit it on the train split, train the large model and MF/BPR on
the same split, and compare the simulator's verdicts with real held-out data.

    python benchmarks/validate_simulator.py [--dataset ml-100k] [--quick] [--out runs/simulator_validation]

Writes validation.json and validation.md (also the half-popularity-weight variant) into --out and prints them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch


def bpr_policy(model, k: int):
    """MF/BPR as a slate function: the user's top-k by <p_u, q_i> + b_i, the observed history excluded."""
    from recengine import ops
    from recengine.agents.policy_base import exclusion_csr, histories

    def act(obs):
        hist = histories(obs)
        offsets, ids = exclusion_csr(hist)
        with torch.no_grad():
            Q = model.user[torch.as_tensor(obs["user_id"], dtype=torch.int64)].contiguous()
            _, slate = ops.catalog_topk(
                Q,
                model.item.detach().contiguous(),
                k,
                bias=model.bias.detach().contiguous(),
                exclude_offsets=offsets,
                exclude_ids=ids,
            )
        return slate

    return act


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default="runs/simulator_validation")
    parser.add_argument("--sessions", type=int, default=2048)
    parser.add_argument(
        "--epochs",
        type=int,
        default=40,
        help="epoch cap of both sequence models (early stopping still applies); epochs, not seconds, "
        "so that a loaded machine gives the same models",
    )
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    from recengine.agents.baselines import PopularityPolicy, RandomPolicy, SupervisedPolicy
    from recengine.agents.hybrid import scorer_from_model
    from recengine.agents.mf import BPRConfig, evaluate_bpr, train_bpr
    from recengine.data import histories_of, leave_one_out, load_movielens, make_synthetic
    from recengine.env import fit_simulator, save_simulator
    from recengine.eval.offline import evaluate_pop, train_item_counts
    from recengine.judging.simulator_validation import random_ranking_ndcg, simulator_validation, validation_markdown
    from recengine.train import SASRecConfig, train_sasrec

    torch.set_num_threads(args.threads)  # a script: it owns the process
    os.makedirs(args.out, exist_ok=True)
    data = (
        make_synthetic(num_users=200, num_items=150, seed=0)
        if args.dataset == "synthetic"
        else load_movielens(args.dataset)
    )
    split = leave_one_out(histories_of(data))
    t = time.perf_counter()
    response_cfg = None if args.quick else SASRecConfig(max_epochs=args.epochs, patience=5, max_seconds=1e9, seed=1)
    sim = fit_simulator(data, split, quick=args.quick, response_config=response_cfg)
    fit_seconds = time.perf_counter() - t
    print(f"simulator fitted in {fit_seconds:.0f}s: {json.dumps(sim.fit_report['response_model'])}")
    save_simulator(sim, os.path.join(args.out, "simulator.safetensors"))

    t = time.perf_counter()
    lm_cfg = SASRecConfig(max_epochs=args.epochs, max_seconds=1e9, seed=0)
    if args.quick:
        lm_cfg = SASRecConfig(dim=32, num_layers=1, max_epochs=3, max_seconds=10, seed=0)
    large = train_sasrec(data, lm_cfg, split=split, progress=False, log=lambda *a: None)
    lm_seconds = time.perf_counter() - t
    print(f"large model trained in {lm_seconds:.0f}s ({len(large.history)} epochs): {large.test}")
    bpr, bpr_info = train_bpr(split, BPRConfig(epochs=10 if args.quick else 40), progress=False)
    k = sim.config.slate_size
    offline = {
        "random": random_ranking_ndcg(split),
        "popularity": evaluate_pop(split)["ndcg@10"],
        "mf-bpr": evaluate_bpr(bpr, split)["ndcg@10"],
        "large-model": large.test["ndcg@10"],
    }
    policies = {
        "random": RandomPolicy(data.num_items, k, seed=0),
        "popularity": PopularityPolicy(train_item_counts(split), k),
        "mf-bpr": bpr_policy(bpr, k),
        "large-model": SupervisedPolicy(scorer_from_model(large.model), k),
    }
    results = {}
    for weight in (1.0, 0.5):
        s = sim if weight == 1.0 else sim.with_popularity_weight(weight)
        t = time.perf_counter()
        v = simulator_validation(
            s, split, policies=policies, offline_ndcg=offline, large_model=large.test, num_sessions=args.sessions
        )
        v["seconds"] = time.perf_counter() - t
        results[f"popularity_weight={weight}"] = v
        print(f"--- popularity weight {weight} ({v['seconds']:.0f}s)")
        print(validation_markdown(v))
    results["meta"] = {
        "dataset": data.name,
        "machine": f"{platform.machine()} {os.cpu_count()} cores, torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads",
        "date": time.strftime("%Y-%m-%d"),
        "fit_seconds": fit_seconds,
        "large_model_seconds": lm_seconds,
        "bpr": bpr_info,
    }
    with open(os.path.join(args.out, "validation.json"), "w") as f:
        json.dump(results, f, indent=1, default=float)
    print(json.dumps(results["meta"]))


if __name__ == "__main__":
    main()
