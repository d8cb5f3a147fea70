"""Dataclass configs for the RL agents and the feedback loop (one docstring per field, cleanrl-style).

Every figure here has a default that trains in seconds-to-minutes on a 2-core CPU; `recengine compare`
builds them and overrides only what its `--quick` mode shrinks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from recengine.config_file import at_least, between, check_fields, positive


@dataclass
class EncoderConfig:
    """Sizes of the SequenceEncoder an agent builds when it is not handed a pre-trained one."""

    dim: int = 64
    """width of the user state f(s) and of the item embeddings e_a"""
    max_len: int = 20
    """how many of the user's most recent items the encoder reads"""
    num_layers: int = 1
    """Transformer blocks"""
    num_heads: int = 2
    """attention heads per block"""
    dropout: float = 0.0
    """dropout inside the encoder while the RL agent trains (RL targets are noisy enough already)"""

    def __post_init__(self):
        check_fields(
            self,
            {
                "dim": at_least(1),
                "max_len": at_least(1),
                "num_layers": at_least(1),
                "num_heads": at_least(1),
                "dropout": between(0, 1, open_high=True),
            },
        )


@dataclass
class DQNConfig:
    """Double DQN over item embeddings: Q(s, a) = <f(s), e_a>."""

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    """the encoder f, when none is passed in"""
    lr: float = 1e-3
    """Adam learning rate"""
    q_scale_init: float = 0.05
    """initial value of the learned positive scale c in Q = V(s) + c · (<f(s), e_a> + b_a)"""
    dueling: bool = True
    """add a state-value head V(s) to Q (ranking unchanged; it absorbs the future clicks all items share)"""
    gamma: float = 0.9
    """discount per recommendation step"""
    n_step: int = 3
    """n of the n-step return"""
    buffer_size: int = 50_000
    """replay capacity (transitions)"""
    batch_size: int = 256
    """transitions per gradient step"""
    learning_starts: int = 1_000
    """transitions collected before the first update"""
    updates_per_step: int = 1
    """gradient steps per vectorised environment step"""
    per_alpha: float = 0.6
    """prioritisation exponent of the replay"""
    per_beta_start: float = 0.4
    """importance-weight exponent at the start; annealed linearly to 1 over the run"""
    priority_eps: float = 0.05
    """added to |TD error| to form a priority (a floor, so no transition is starved nor its weight inflated)"""
    huber_delta: float = 1.0
    """Huber loss threshold of the TD error"""
    tau: float = 0.05
    """Polyak factor of the target network (1.0 = periodic hard copy every target_every updates)"""
    target_every: int = 1
    """updates between target-network syncs"""
    temperature_start: float = 1.0
    """softmax exploration temperature on Q at the start (slates drawn by catalog_sample)"""
    temperature_end: float = 0.05
    """... annealed linearly to this by `explore_fraction` of the run"""
    epsilon: float = 0.0
    """additionally, the chance that one slate is uniform random (0 = softmax exploration only)"""
    explore_fraction: float = 0.5
    """fraction of the environment steps over which the temperature anneals"""
    grad_clip: float = 10.0
    """max gradient norm"""
    exclude_seen: bool = True
    """never recommend an item in the user's visible history"""

    def __post_init__(self):
        check_fields(
            self,
            {
                "lr": positive(),
                "q_scale_init": between(0, float("inf"), open_high=True),
                "gamma": between(0, 1),
                "n_step": at_least(1),
                "buffer_size": at_least(1),
                "batch_size": at_least(1),
                "learning_starts": at_least(0),
                "updates_per_step": at_least(0),
                "per_alpha": between(0, float("inf"), open_high=True),
                "per_beta_start": between(0, 1),
                "priority_eps": positive(),
                "huber_delta": positive(),
                "tau": between(0, 1, open_low=True),
                "target_every": at_least(1),
                "temperature_start": positive(),
                "temperature_end": positive(),
                "epsilon": between(0, 1),
                "explore_fraction": between(0, 1),
                "grad_clip": positive(),
            },
        )


@dataclass
class ReinforceConfig:
    """REINFORCE with a softmax policy over the catalogue and the top-K off-policy correction (Chen et al. 2019)."""

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    """the encoder f, when none is passed in"""
    lr: float = 1e-3
    """Adam learning rate"""
    gamma: float = 0.9
    """discount of the per-session return"""
    temperature: float = 1.0
    """softmax temperature of the policy π(a|s) ∝ exp(<f(s), e_a> + b_a)"""
    topk_correction: bool = True
    """multiply each term by λ_K = K (1 − π)^(K−1): the gradient of the slate policy, not of one draw"""
    baseline: bool = False
    """subtract a running-mean baseline from the per-item return (see agents.reinforce: off by default)"""
    weight_clip: float = 10.0
    """cap c of the importance weight min(π/β, c) when learning from logged data"""
    kl_weight: float = 0.0
    """weight of KL(π_start || π), π_start the scorer as the agent received it (0 = unconstrained)"""
    min_batch: int = 512
    """on-policy: update once this many (state, clicked item) samples have finished sessions"""
    batch_size: int = 512
    """off-policy: logged samples per gradient step"""
    grad_clip: float = 10.0
    """max gradient norm"""
    exclude_seen: bool = True
    """never recommend an item in the user's visible history"""

    def __post_init__(self):
        check_fields(
            self,
            {
                "lr": positive(),
                "gamma": between(0, 1),
                "temperature": positive(),
                "weight_clip": positive(),
                "kl_weight": at_least(0),
                "min_batch": at_least(1),
                "batch_size": at_least(1),
                "grad_clip": positive(),
            },
        )


@dataclass
class SlateQConfig:
    """SlateQ on top of the large model (Ie et al. 2019): a slate choice model learnt from the observed clicks,
    each item's long-term value learnt by TD, the slate's value decomposed through the choice model, and a KL
    penalty that keeps the fine-tuned scorer near the large model (recengine.agents.slateq)."""

    lr: float = 3e-4
    """Adam learning rate of the scorer (the choice model's utilities) and of the item-value head"""
    no_click_lr: float = 1e-2
    """Adam learning rate of the no-click logit c (one scalar: it may move faster than the network)"""
    no_click_init: float = 0.0
    """the no-click logit c at the start"""
    kl_weight: float = 1.0
    """weight of KL(π_large model || π) in the loss (0 = unconstrained fine-tuning)"""
    gamma: float = 0.5
    """discount of the item values Q(s, j) = r + γ V(s'); 0 = myopic (the slate that maximises the click
    probability under the learnt choice model)"""
    value_weight: float = 1.0
    """weight of the item values' TD loss (ignored when gamma is 0)"""
    candidates: int = 50
    """slates are chosen among the choice model's top `candidates` items, re-ranked by SlateQ's v(s, j) · (Q(s, j)
    − Q(s, none)) (the paper's top-k slate optimisation)"""
    batch_size: int = 256
    """logged transitions per gradient step"""
    buffer_size: int = 50_000
    """replay capacity (transitions)"""
    learning_starts: int = 512
    """transitions collected before the first update"""
    updates_per_step: int = 2
    """gradient steps per vectorised environment step"""
    tau: float = 0.05
    """Polyak factor of the item values' target network"""
    temperature_start: float = 0.5
    """softmax exploration temperature over the choice logits at the start (slates drawn by catalog_sample)"""
    temperature_end: float = 0.05
    """... annealed linearly to this by `explore_fraction` of the run"""
    explore_fraction: float = 0.5
    """fraction of the environment steps over which the temperature anneals"""
    huber_delta: float = 1.0
    """Huber threshold of the TD error"""
    grad_clip: float = 10.0
    """max gradient norm"""
    exclude_seen: bool = True
    """never recommend an item in the user's visible history"""
    exclude_logged: bool = True
    """nor one of the user's items in the logged training data (recengine.agents.logged_items)"""

    def __post_init__(self):
        check_fields(
            self,
            {
                "lr": positive(),
                "no_click_lr": positive(),
                "no_click_init": between(-50, 50),
                "kl_weight": at_least(0),
                "gamma": between(0, 1, open_high=True),
                "value_weight": at_least(0),
                "candidates": at_least(1),
                "batch_size": at_least(1),
                "buffer_size": at_least(1),
                "learning_starts": at_least(0),
                "updates_per_step": at_least(0),
                "tau": between(0, 1, open_low=True),
                "temperature_start": positive(),
                "temperature_end": positive(),
                "explore_fraction": between(0, 1),
                "huber_delta": positive(),
                "grad_clip": positive(),
            },
        )


@dataclass
class LoopConfig:
    """The feedback loop: recommend -> simulated response -> store -> update."""

    num_envs: int = 128
    """simulated users stepped at once"""
    total_steps: int = 200
    """vectorised environment steps (each is num_envs recommendations)"""
    slate_size: int = 10
    """items per recommendation"""
    eval_every: int = 25
    """steps between greedy evaluations (0 = never)"""
    eval_sessions: int = 256
    """sessions per greedy evaluation"""
    seed: int = 0
    """seed of the environment, the exploration and the network initialisation"""
    progress: bool = True
    """show a tqdm progress bar"""


def to_dict(cfg) -> dict:
    """A JSON-ready dict of a config."""
    return asdict(cfg)
