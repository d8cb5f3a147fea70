"""Fine-tune the large model with reinforcement learning in a user simulator fitted to the data, and measure
what RL adds over the large model alone on the same simulated sessions.

    python examples/finetune_rl.py                       # synthetic data, a few minutes on a laptop CPU
    python examples/finetune_rl.py --data my_events.csv  # your own log (any format `load_local` reads)

The steps: train the large model on the data (supervised next-item), fit the simulator to the same train split,
start a REINFORCE agent from a copy of the large model (so its first recommendation is the large model's), let it
learn from simulated clicks, then evaluate both greedily on the same sessions and pair their returns session by
session. `recengine compare` runs this for every agent, with the simulator's validation and robustness checks.
"""

from __future__ import annotations

import argparse

import torch

from recengine.agents.baselines import SupervisedPolicy
from recengine.agents.config import LoopConfig, ReinforceConfig
from recengine.agents.hybrid import make_hybrid, pretrain, scorer_from_model
from recengine.data import histories_of, leave_one_out, load_local, make_synthetic
from recengine.env import SeqSimConfig, fit_simulator, vector_env
from recengine.eval.stats import paired_diff
from recengine.train import SASRecConfig


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", help="your own data (default: a synthetic dataset)")
    p.add_argument("--users", type=int, default=300, help="users of the synthetic dataset")
    p.add_argument("--epochs", type=int, default=5, help="epochs of the large model's supervised training")
    p.add_argument("--rl-steps", type=int, default=60, help="RL training steps (each recommends to --envs users)")
    p.add_argument("--envs", type=int, default=64, help="simulated users per step")
    p.add_argument("--sessions", type=int, default=256, help="evaluation sessions")
    args = p.parse_args(argv)
    torch.manual_seed(0)  # a script may set global state; library code never does

    data = load_local(args.data) if args.data else make_synthetic(num_users=args.users, num_items=120, seed=0)
    split = leave_one_out(histories_of(data))
    large = pretrain(
        data,
        SASRecConfig(dim=32, max_len=20, num_layers=1, max_epochs=args.epochs),
        split=split,
        progress=False,
        log=lambda *a: None,
    )
    print(f"large model: test ndcg@10 {large.test['ndcg@10']:.3f} after {len(large.history)} epochs")

    sim_cfg = SeqSimConfig(slate_size=10, history_len=20, max_steps=15)
    simulator = fit_simulator(data, split, config=sim_cfg, quick=True, seed=1)  # fitted to the train split only
    agent = make_hybrid(
        large.model,
        "reinforce",
        num_items=data.num_items,
        slate_size=10,
        history_len=20,
        reinforce=ReinforceConfig(lr=1e-3, min_batch=128),
        total_steps=args.rl_steps,
    )
    loop = LoopConfig(num_envs=args.envs, total_steps=args.rl_steps, slate_size=10, eval_every=0, progress=False)

    from recengine.agents.loop import evaluate, train

    run = train(agent, vector_env(simulator, args.envs), loop)
    print(f"RL fine-tuning: {run['updates']} updates in {run['train_seconds']:.1f}s")

    sessions = vector_env(simulator, args.sessions)  # the same users and random draws for both policies
    alone = evaluate(SupervisedPolicy(scorer_from_model(large.model), 10), sessions, seed=7)
    tuned = evaluate(agent, sessions, seed=7)
    d = paired_diff(tuned["session_returns"], alone["session_returns"])
    print(f"return per session: large model {alone['avg_return']:.3f}, fine-tuned {tuned['avg_return']:.3f}")
    print(f"paired difference {d['mean']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}] clicks per session (95%)")


if __name__ == "__main__":
    main()
