"""DQN over the catalogue: Q(s, a) = <f(s), e_a> + b_a, with the SequenceEncoder as f (scaled by a learned
positive constant, plus by default a dueling state value V(s): neither changes the ranking — see QNetwork).

- slates: the top-k items of Q (catalog_topk), the user's history excluded; while exploring, k items drawn
  without replacement from softmax(Q / temperature) (catalog_sample), the temperature annealed;
- storage: one transition per user and step holds the whole slate and each slate item's own reward (1 for
  the clicked item); every item in the slate is trained towards r_i + γ^m V(s_{t+m}), so one encoder pass
  serves k TD targets;
- n-step returns by the replay, which links each user's rows across steps (num_envs streams; a session's end
  cuts the sum short);
- double DQN: a* = argmax_a Q_online(s', a) (catalog_topk, k = 1), valued by the target network;
- prioritized replay (recengine.buffers.PrioritizedReplay) and the fused TD update (recengine.ops.td_loss);
- target network by Polyak averaging (tau < 1) or a periodic hard copy (tau = 1, every target_every updates).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from recengine.agents.config import DQNConfig
from recengine.agents.policy_base import Policy, histories, op
from recengine.data.exclusion import exclusion_csr
from recengine.nn.modes import eval_mode


class QNetwork(nn.Module):
    """Q(s, a) = V(s) + c · (<f(s), e_a> + b_a): the scorer's logits, a learned positive scale c and (when
    `dueling`) a state value V(s) = w · f(s) + w0.

    Neither c nor V changes a ranking, so slates are the top-k of the scorer's own logits. c starts small
    (`init_scale`): a fresh encoder's logits spread by about 1 and a pre-trained one's by several units, while
    click values differ by a few hundredths — unscaled, the first thousand updates would only shrink them. V
    carries the part of every target all items of a state share (the session's future clicks).

    forward(hist) -> (Q (B, D), E (N, D), bias (N,), V (B,), c ()): Q(s, a) = V + c · (Q_s · E_a + bias_a).
    """

    def __init__(self, scorer: nn.Module, dim: int, dueling: bool, init_scale: float):
        super().__init__()
        self.scorer = scorer
        self.log_scale = nn.Parameter(torch.tensor(float(init_scale)).log())
        self.value = nn.Linear(dim, 1) if dueling else None
        if self.value is not None:
            nn.init.zeros_(self.value.weight)
            nn.init.zeros_(self.value.bias)

    def forward(self, hist):
        Q, E, bias = self.scorer(hist)
        V = self.value(Q).squeeze(-1) if self.value is not None else Q.new_zeros(Q.shape[0])
        return Q, E, bias, V, self.log_scale.exp()


class DQNAgent(Policy):
    """`scorer`: nn.Module mapping (B, L) histories to (Q (B, D), E (N, D), bias (N,)) (see agents.scorer)."""

    name = "dqn"
    learns = True

    def __init__(
        self,
        scorer: nn.Module,
        num_items: int,
        slate_size: int,
        history_len: int,
        cfg: DQNConfig,
        total_steps: int,
        seed: int = 0,
    ):
        self.cfg, self.k, self.num_items, self.history_len = cfg, slate_size, num_items, history_len
        self.scorer = scorer
        self.online = QNetwork(scorer, scorer.encoder.dim, cfg.dueling, cfg.q_scale_init)
        self.target = copy.deepcopy(self.online)
        for p in self.target.parameters():
            p.requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.online.parameters(), lr=cfg.lr)
        self.total_steps, self.seed = max(total_steps, 1), seed
        self.env_steps, self.updates, self.transitions = 0, 0, 0
        self.generator = torch.Generator().manual_seed(seed)
        self.replay = None  # built at the first step, when the number of simulated users is known

    # ------------------------------------------------------------------------------------------ replay
    def replay_fields(self) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        """The columns of this agent's replay: {name: (shape, dtype)} of one transition."""
        L, k = self.history_len, self.k
        return {
            "hist": ((L,), torch.int64),
            "slate": ((k,), torch.int64),
            "item_click": ((k,), torch.float32),  # each slate item's own reward (the clicked one's)
            "reward": ((), torch.float32),  # the step's reward (sum over the slate)
            "done": ((), torch.bool),  # the session ended at this step
            "next_hist": ((L,), torch.int64),  # the history after the step (before any reset)
        }

    def _make_replay(self, num_envs: int):
        from recengine.buffers import PrioritizedReplay

        capacity = -(-self.cfg.buffer_size // num_envs) * num_envs
        return PrioritizedReplay(
            capacity,
            self.replay_fields(),
            alpha=self.cfg.per_alpha,
            n_step=self.cfg.n_step,
            gamma=self.cfg.gamma,
            num_envs=num_envs,
        )

    # --------------------------------------------------------------------------------------------- act
    def temperature(self) -> float:
        frac = min(1.0, self.env_steps / (self.cfg.explore_fraction * self.total_steps + 1e-9))
        return self.cfg.temperature_start + frac * (self.cfg.temperature_end - self.cfg.temperature_start)

    @torch.no_grad()
    def act(self, obs, explore: bool = False) -> torch.Tensor:
        hist = histories(obs)
        with eval_mode(self.online):
            Q, E, bias, _, _ = self.online(hist)
        offsets, ids = exclusion_csr(hist) if self.cfg.exclude_seen else (None, None)
        if not explore:
            return op("catalog_topk")(Q, E, self.k, bias=bias, exclude_offsets=offsets, exclude_ids=ids)[1]
        seed = self.seed * 1_000_003 + self.env_steps
        slates, _ = op("catalog_sample")(
            Q, E, self.k, seed, bias=bias, temperature=self.temperature(), exclude_offsets=offsets, exclude_ids=ids
        )
        if self.cfg.epsilon > 0:
            uniform = torch.rand(hist.shape[0], generator=self.generator) < self.cfg.epsilon
            if uniform.any():
                zeros = torch.zeros(int(uniform.sum()), 1)
                sub_off, sub_ids = exclusion_csr(hist[uniform]) if self.cfg.exclude_seen else (None, None)
                slates[uniform] = op("catalog_sample")(
                    zeros,
                    torch.zeros(self.num_items, 1),
                    self.k,
                    seed + 7,
                    exclude_offsets=sub_off,
                    exclude_ids=sub_ids,
                )[0]
        return slates

    # ----------------------------------------------------------------------------------------- observe
    def observe(self, step) -> None:
        """Store one row per simulated user; the replay links each to the same user's next n steps."""
        self.env_steps += 1
        hist = histories(step.obs)
        if self.replay is None:
            self.replay = self._make_replay(hist.shape[0])
        item_click = torch.zeros(step.slates.shape, dtype=torch.float32)
        clicked = step.clicks >= 0
        item_click[clicked, step.clicks[clicked]] = step.rewards[clicked]
        self.replay.add(
            hist=hist,
            slate=step.slates.to(torch.int64),
            item_click=item_click,
            reward=step.rewards.to(torch.float32),
            done=step.done.clone(),
            next_hist=histories(step.next_obs),
        )
        self.transitions += hist.shape[0]

    # ------------------------------------------------------------------------------------------ update
    def beta(self) -> float:
        frac = min(1.0, self.env_steps / self.total_steps)
        return self.cfg.per_beta_start + frac * (1.0 - self.cfg.per_beta_start)

    def update(self) -> dict[str, float]:
        if self.transitions < max(self.cfg.learning_starts, self.cfg.batch_size):
            return {}
        stats = {}
        for _ in range(self.cfg.updates_per_step):
            stats = self._update_once()
        return stats

    def _update_once(self) -> dict[str, float]:
        cfg, k = self.cfg, self.k
        batch, indices, weights = self.replay.sample(cfg.batch_size, self.beta(), generator=self.generator)
        if self.cfg.n_step == 1:  # the replay adds the n-step keys only for n > 1
            batch.update(n_next_hist=batch["next_hist"], n_reward=batch["reward"], n_discount=batch["discount"])
        hist, slate, next_hist = batch["hist"], batch["slate"], batch["n_next_hist"]
        B = hist.shape[0]
        Q, E, bias, V, c = self.online(hist)
        q_sa = V.unsqueeze(1) + c * ((Q.unsqueeze(1) * E[slate]).sum(-1) + bias[slate])  # (B, k)
        with torch.no_grad():
            with eval_mode(self.online):
                Qn, En, bn, _, _ = self.online(next_hist)
            offsets, ids = exclusion_csr(next_hist) if cfg.exclude_seen else (None, None)
            _, best = op("catalog_topk")(Qn, En, 1, bias=bn, exclude_offsets=offsets, exclude_ids=ids)
            Qt, Et, bt, Vt, ct = self.target(next_hist)
            next_q = Vt + ct * ((Qt * Et[best[:, 0]]).sum(-1) + bt[best[:, 0]])  # (B,)
        # item i's n-step return: its own click now, then the whole session's clicks of the next m-1 steps
        item_return = batch["item_click"] + (batch["n_reward"] - batch["reward"]).unsqueeze(1)
        per_item = lambda t: t.unsqueeze(1).expand(B, k).reshape(B * k).contiguous()  # noqa: E731
        # alpha=1: td_loss returns |td| + eps, the raw priority (the replay applies its own alpha); the floor
        # eps keeps a transition that happens to fit exactly from dragging every importance weight to ~0
        loss, td, prio = op("td_loss")(
            q_sa.reshape(B * k),
            per_item(next_q),
            item_return.reshape(B * k).contiguous(),
            torch.zeros(B * k),
            per_item(batch["n_discount"]),
            per_item(weights.to(torch.float32)),
            huber_delta=cfg.huber_delta,
            alpha=1.0,
            eps=cfg.priority_eps,
        )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.online.parameters(), cfg.grad_clip)
        self.optimizer.step()
        # a transition is as surprising as its most surprising slate item
        self.replay.update_priorities(indices, prio.detach().reshape(B, k).amax(1))
        self.updates += 1
        self._sync_target()
        return {
            "loss": float(loss.detach()),
            "td_abs": float(td.detach().abs().mean()),
            "q": float(q_sa.detach().mean()),
            "q_scale": float(c.detach()),
            "temperature": self.temperature(),
        }

    @torch.no_grad()
    def _sync_target(self) -> None:
        if self.updates % self.cfg.target_every:
            return
        tau = self.cfg.tau
        for pt, po in zip(self.target.parameters(), self.online.parameters()):
            pt.mul_(1 - tau).add_(po.detach(), alpha=tau)
        for bt, bo in zip(self.target.buffers(), self.online.buffers()):
            bt.copy_(bo)

    def num_updates(self) -> int:
        return self.updates
