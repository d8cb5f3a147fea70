"""CompareConfig: the settings of one `recengine compare` run (what runs, how long, how it is measured)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from recengine.agents.config import DQNConfig, EncoderConfig, ReinforceConfig, SlateQConfig
from recengine.config_file import Rule, at_least, between, check_fields, one_of
from recengine.judging.oracle_lookahead import LookaheadBudget

DATASET_NAMES = ("ml-100k", "ml-1m", "synthetic")
"""the datasets a comparison knows by name (any other value is the path of your own data)"""


@dataclass
class CompareConfig:
    """Settings of one comparison run; `quick_settings()` shrinks them to a smoke run of about a minute."""

    out: str = "runs/compare"
    """output directory (results.json, report.md, learning_curves.png)"""
    dataset: str = "ml-100k"
    """"ml-100k", "ml-1m", "synthetic" (MovieLens falls back to synthetic, with a message, when it cannot be
    loaded), or the path of your own data (recengine.data.local: an atomic directory, a sequence file, a
    Parquet/CSV log; never a fallback)"""
    data_root: str | None = None
    """where ml-100k lies (default: $RECENGINE_DATA, then the cached recbole wheel)"""
    quick: bool = False
    """smoke settings (set by quick_settings())"""
    seed: int = 0
    """seed of everything the agents do"""
    simulator_seed: int = 1001
    """the simulator's response model's own seed (never one of the agents' training seeds)"""
    seeds: int = 1
    """training seeds: every learning agent is trained seeds times (seed, seed + 1, ...); seed i's agents and
    baselines are all evaluated on the same sessions (eval seed seed + 999 + 1000 i), and the intervals pool
    the sessions of every seed"""
    ci_level: float = 0.95
    """level of the confidence intervals (return per session, paired differences, learning-curve gain)"""
    slate_size: int = 10
    """items per recommendation"""
    history_len: int = 50
    """items of the user's history the simulator shows the policy (and the encoder reads): the large model's
    context (pretrain_max_len)"""
    max_session_steps: int = 30
    """a simulated session is cut after this many recommendations"""
    num_envs: int = 128
    """simulated users per training step"""
    rl_steps: dict = field(
        default_factory=lambda: {
            "dqn": 200,
            "reinforce": 300,
            "hybrid-dqn": 100,
            "hybrid-reinforce": 150,
            "hybrid-slateq": 400,
        }
    )
    """vectorised training steps per learning agent (num_envs recommendations each); from scratch needs more
    steps than fine-tuning the pre-trained model"""
    eval_every: int = 40
    """training steps between greedy evaluations (the learning curves)"""
    eval_sessions: int = 1024
    """sessions per greedy evaluation (the same sessions for every agent: the paired differences' intervals
    shrink as 1 / sqrt(eval_sessions))"""
    curve_sessions: int = 128
    """sessions per learning-curve point"""
    pretrain_epochs: int = 15
    """epochs of the large model's supervised training (the best epoch on the validation items is kept); a budget
    in epochs, not seconds, so the run's figures do not depend on the machine's load"""
    simulator_epochs: int = 14
    """epochs of the simulator's response model (its own training run, on the train split only)"""
    pretrain_max_len: int = 50
    """the large model's window"""
    pretrain_dim: int = 64
    """the large model's width (fresh encoders share its architecture)"""
    pretrain_layers: int = 2
    """the large model's Transformer layers"""
    item_text: str = "none"
    """the large model's item text features: "none", "tfidf" or "minilm" (SASRecConfig.item_text)"""
    bpr_epochs: int = 40
    """training epochs of the MF (BPR) agent's offline model"""
    ope_sessions: int = 1000
    """logged sessions per off-policy estimate (and as many on-policy ones for the true value)"""
    ope_epsilon: float = 0.1
    """the logging policy: the target's slate with probability 1 - epsilon, a uniform random slate otherwise"""
    ope_targets: tuple = ("large-model", "reinforce", "hybrid-slateq")
    """the policies whose value is estimated off-policy"""
    synthetic_users: int = 600
    """users of the synthetic dataset"""
    synthetic_items: int = 400
    """items of the synthetic dataset"""
    agents: tuple = (
        "random",
        "popularity",
        "large-model",
        "large-model-logged",
        "dqn",
        "reinforce",
        "hybrid-slateq",
        "mf-bpr",
    )
    """what to run, by registry name (recengine.agents.registry), in report order. hybrid-dqn and
    hybrid-reinforce are registered but not run by default: hybrid-slateq dominates both in every robustness check
    (benchmarks/RESULTS.md), and leaving them out keeps the default run within its time budget"""
    dqn: DQNConfig = field(
        default_factory=lambda: DQNConfig(
            lr=5e-4, gamma=0.5, n_step=1, batch_size=512, learning_starts=1024, updates_per_step=4, q_scale_init=0.05
        )
    )
    """DQN from scratch. q_scale_init c: Q = V + c · logit, and Adam moves a logit by about lr per step, so Q
    moves by about c · lr; too small a c leaves the TD updates unable to move the ranking away from the
    popularity prior"""
    reinforce: ReinforceConfig = field(default_factory=lambda: ReinforceConfig(lr=1e-2, min_batch=512))
    """REINFORCE from scratch"""
    dqn_encoder: EncoderConfig = field(
        default_factory=lambda: EncoderConfig(dim=32, max_len=20, num_layers=1, num_heads=2)
    )
    """DQN from scratch: a smaller SequenceEncoder (it takes many more gradient steps than REINFORCE)"""
    dqn_item_table: str = "tied"
    """DQN from scratch scores items against: "tied", the encoder's own item vectors (id embedding + projected
    genre features, as the large model and REINFORCE do), or "own", a separate zero table (agents.scorer.
    untied_scorer). With "own", ∂Q/∂f(s) = c · e_a = 0 at the start, so the encoder gets no gradient until the
    table has grown, and nothing learnt about an item carries over to items of the same genres; the tied table
    learns faster (benchmarks/RESULTS.md, "compare settings")"""
    dqn_bias_init: float = 0.0
    """the most popular item's bias at the start of DQN from scratch, the others below it (a shift: V(s) and the
    softmax absorb it)"""
    dqn_popularity_prior: float = 1.0
    """scale s of DQN's popularity prior: item a's bias starts at dqn_bias_init + s · (log(1 + n_a) − max_b
    log(1 + n_b)), n_a its count in the interactions: a fresh DQN's logits are this prior plus the random
    tied-table term, its exploration draws items about ∝ (1 + n_a)^(s / temperature), and the TD updates learn
    the personalisation on top (0 = every item alike)"""
    hybrid_dqn: DQNConfig = field(
        default_factory=lambda: DQNConfig(
            lr=3e-4,
            gamma=0.5,
            n_step=1,
            batch_size=256,
            learning_starts=1024,
            updates_per_step=2,
            temperature_start=0.5,
            temperature_end=0.05,
        )
    )
    """DQN fine-tuning the pre-trained encoder"""
    hybrid_reinforce: ReinforceConfig = field(default_factory=lambda: ReinforceConfig(lr=1e-3, min_batch=512))
    """REINFORCE fine-tuning the pre-trained encoder"""
    hybrid_slateq: SlateQConfig = field(default_factory=SlateQConfig)
    """SlateQ fine-tuning the pre-trained encoder (a choice model learnt from the clicks, a KL penalty to the
    large model)"""
    validation_sessions: int = 1024
    """sessions per policy of the simulator validation (random, popularity, MF/BPR, the large model)"""
    robustness: bool = True
    """re-check hybrid − large model in other simulators (recengine.report.robustness)"""
    robust_sessions: int = 512
    """sessions per policy in each robustness check"""
    robust_fit_epochs: int = 4
    """epochs of each extra simulator's (smaller) response model"""
    oracles: bool = True
    """play the myopic and the lookahead oracle (planners that read the simulator's own model: yardsticks, not
    agents) on every seed's evaluation sessions, and report the headroom over the large model
    (recengine.report.headroom); in the robustness checks too"""
    lookahead: LookaheadBudget = field(default_factory=lambda: LookaheadBudget(candidates=4, rollouts=2, horizon=2))
    """the lookahead oracle's planning budget, in slates, simulated steps and seeds (never seconds); its cost per
    planned step is about candidates x rollouts x horizon simulator steps (benchmarks/RESULTS.md, "headroom")"""
    oracle_sessions: int = 256
    """sessions the oracles play: the first oracle_sessions of the agents' evaluation sessions (slot b of a smaller
    environment from the same seed is the same session: same user, same draws), so their differences from the
    agents pair up; fewer than eval_sessions to bound the lookahead's cost (at most eval_sessions are used)"""
    headroom_sessions: int = 256
    """sessions of the main simulator with each mechanism switched off (the large model and both oracles)"""
    headroom_mechanisms: bool = False
    """measure the headroom with each mechanism of the simulator switched off, and check each mechanism against
    the real train sessions (needs oracles); off by default, where it would take the single-seed run past 15
    minutes on 2 cores (``headroom_mechanisms = true`` in a --config file turns it on)"""
    mechanism_check_items: int = 2000
    """real next items the evolving-state check scores"""
    progress: bool = True
    """tqdm bars"""

    def __post_init__(self):
        self.check()

    def check(self) -> None:
        """Raise ValueError naming the first setting outside what a run can use (the same words whether it came
        from Python, a flag or a config file)."""
        check_fields(
            self,
            {
                "dataset": Rule(
                    lambda v: v in DATASET_NAMES or (isinstance(v, str) and os.path.exists(v)),
                    f"one of {', '.join(map(repr, DATASET_NAMES))} or an existing path",
                ),
                "item_text": one_of("none", "tfidf", "minilm"),
                "dqn_item_table": one_of("tied", "own"),
                "seed": at_least(0),
                "simulator_seed": at_least(0),
                "seeds": at_least(1),
                "ci_level": between(0, 1, open_low=True, open_high=True),
                "slate_size": at_least(1),
                "history_len": at_least(1),
                "max_session_steps": at_least(1),
                "num_envs": at_least(1),
                "eval_every": at_least(1),
                "eval_sessions": at_least(1),
                "curve_sessions": at_least(1),
                "pretrain_epochs": at_least(1),
                "simulator_epochs": at_least(1),
                "pretrain_max_len": at_least(1),
                "pretrain_dim": at_least(1),
                "pretrain_layers": at_least(1),
                "bpr_epochs": at_least(1),
                "ope_sessions": at_least(1),
                "ope_epsilon": between(0, 1),
                "synthetic_users": at_least(1),
                "synthetic_items": at_least(1),
                "validation_sessions": at_least(1),
                "robust_sessions": at_least(1),
                "robust_fit_epochs": at_least(1),
                "headroom_sessions": at_least(1),
                "oracle_sessions": at_least(1),
                "mechanism_check_items": at_least(1),
            },
        )
        bad = next(
            (k for k, v in self.rl_steps.items() if isinstance(v, bool) or not isinstance(v, int) or v < 0), None
        )
        if bad is not None:
            raise ValueError(f"rl_steps must map agents to step counts >= 0, got {bad}: {self.rl_steps[bad]!r}")

    def simulator_config(self):
        """The simulated sessions' settings (recengine.env.SeqSimConfig): slate size, the history the agents
        see, the session cap."""
        from recengine.env import SeqSimConfig

        return SeqSimConfig(slate_size=self.slate_size, history_len=self.history_len, max_steps=self.max_session_steps)

    def quick_settings(self) -> CompareConfig:
        """Shrink every budget to a smoke run of about a minute (not the real figures); returns self."""
        self.quick = True
        self.rl_steps = {name: 12 for name in self.rl_steps}
        self.eval_every, self.num_envs = 6, 64
        self.eval_sessions, self.curve_sessions = 128, 64
        self.validation_sessions, self.robust_sessions = 128, 128
        self.pretrain_epochs, self.simulator_epochs, self.robust_fit_epochs = 1, 2, 1
        self.ope_sessions = 300
        self.pretrain_dim, self.pretrain_layers = 32, 1
        self.synthetic_users, self.synthetic_items = 200, 120
        self.max_session_steps = 15
        self.lookahead = LookaheadBudget(candidates=2, rollouts=1, horizon=2)
        self.headroom_sessions, self.mechanism_check_items = 64, 200
        self.bpr_epochs = 5
        for c in (self.dqn, self.hybrid_dqn):
            c.learning_starts, c.batch_size, c.updates_per_step = 128, 64, 1
        for c in (self.reinforce, self.hybrid_reinforce):
            c.min_batch = 128
        return self
