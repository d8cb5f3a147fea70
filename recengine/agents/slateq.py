"""SlateQ on top of the large model: the slate's value decomposed through a choice model learnt from the clicks.

SlateQ (Ie et al. 2019) writes the value of a slate A in state s as

    Q(s, A) = Σ_{j in A} P(j | s, A) Q(s, j) + P(none | s, A) Q(s, none),

with P the user's choice model (recengine.agents.choice_model: a conditional logit with a no-click option, the
items weighing the agent's own softmax π(j|s) over the catalogue) and Q(s, j) the long-term value of the user
clicking j, learnt by TD on the item actually clicked (or on "none"): y = r + γ Q(s', A'), A' the agent's own
slate at s'. Here:

- the choice model's utilities are the large model's scorer (encoder + tied item table, a copy), fine-tuned by
  maximum likelihood on every logged (state, slate, outcome): clicks and ignored slates alike; the no-click logit
  c is one learnt scalar. Nothing is read from the simulator but its observations and clicks;
- conservative: the loss adds kl_weight · KL(π_large model || π) (recengine.agents.anchor), so the scorer keeps
  the large model's ranking of real next items except where the clicks pay for a change;
- Q(s, j) = a(s) + <W f(s), e_j> + d_j and Q(s, none) = a(s) + n(s) on the detached state f(s) and item vectors
  e_j (a small head; W, d start at 0, so every item starts with the same long-term value and the first slates
  are the choice model's most likely items); a Polyak target copy gives the bootstrap;
- slates: the choice model's top `candidates` items, re-ranked by v(s, j) · (Q(s, j) − Q(s, none)) with
  v = π(j|s) (SlateQ's top-k slate optimisation; with γ = 0 this is the myopic most-clicked slate); while
  exploring, k items drawn from softmax(logits / T) (catalog_sample), T annealed;
- the user's items in the logged training data are never recommended (recengine.agents.logged_items), besides
  the visible history.
"""

from __future__ import annotations

import torch
from torch import nn

from recengine.agents.anchor import frozen_copy, policy_kl
from recengine.agents.choice_model import choice_nll, slate_choice_log_probs
from recengine.agents.config import SlateQConfig
from recengine.agents.logged_items import LoggedItems
from recengine.agents.policy_base import Policy, histories, op
from recengine.agents.reinforce import slate_log_probs
from recengine.data.exclusion import exclusion_csr
from recengine.nn.gather_rows import gather_rows
from recengine.nn.modes import eval_mode

__all__ = ["ItemValues", "SlateQAgent"]


class ItemValues(nn.Module):
    """Q(s, j) = a(s) + <W f(s), e_j> + d_j and Q(s, none) = a(s) + n(s), from the state f(s) (B, D) and the item
    vectors e (N, D), both detached by the caller. forward(f, E, items (B, m)) -> (Q items (B, m), Q none (B,))."""

    def __init__(self, dim: int, num_items: int):
        super().__init__()
        self.state = nn.Linear(dim, 1)
        self.none = nn.Linear(dim, 1)
        self.interaction = nn.Linear(dim, dim, bias=False)
        self.item = nn.Parameter(torch.zeros(num_items))
        for p in (self.state.weight, self.none.weight, self.interaction.weight):
            nn.init.zeros_(p)
        nn.init.zeros_(self.state.bias)
        nn.init.zeros_(self.none.bias)

    def forward(self, f: torch.Tensor, E: torch.Tensor, items: torch.Tensor):
        a = self.state(f)  # (B, 1)
        q = a + (self.interaction(f).unsqueeze(1) * E[items]).sum(-1) + gather_rows(self.item, items)
        return q, (a + self.none(f)).squeeze(1)


class SlateQAgent(Policy):
    """`scorer`: a recengine.agents.scorer.Scorer (a copy of the large model's); `logged`: each user's logged
    items (None: only the visible history is excluded)."""

    name = "slateq"
    learns = True

    def __init__(
        self,
        scorer: nn.Module,
        num_items: int,
        slate_size: int,
        history_len: int,
        cfg: SlateQConfig,
        total_steps: int,
        *,
        logged: LoggedItems | None = None,
        seed: int = 0,
    ):
        if slate_size > num_items:
            raise ValueError(f"slate_size: {slate_size} > num_items {num_items}")
        self.cfg, self.k, self.num_items, self.history_len = cfg, slate_size, num_items, history_len
        self.scorer = scorer
        self.reference = frozen_copy(scorer)
        self.no_click = nn.Parameter(torch.tensor(float(cfg.no_click_init)))
        self.values = ItemValues(scorer.dim, num_items)
        self.target_values = frozen_copy(self.values)
        self.optimizer = torch.optim.Adam(
            [
                {"params": [*scorer.parameters(), *self.values.parameters()], "lr": cfg.lr},
                {"params": [self.no_click], "lr": cfg.no_click_lr},
            ]
        )
        self.logged = logged
        self.total_steps, self.seed = max(total_steps, 1), seed
        self.env_steps, self.updates, self.transitions = 0, 0, 0
        self.generator = torch.Generator().manual_seed(seed)
        self.replay = None  # built at the first step, when the number of simulated users is known

    # ---------------------------------------------------------------------------------------- helpers
    def _exclusion(self, obs, hist: torch.Tensor):
        if self.logged is not None and self.cfg.exclude_logged:
            return self.logged.exclusion(obs, hist)
        return exclusion_csr(hist) if self.cfg.exclude_seen else (None, None)

    def _batch_exclusion(self, hist: torch.Tensor, users: torch.Tensor):
        return self._exclusion({"history": hist, "user_id": users}, hist)

    def temperature(self) -> float:
        frac = min(1.0, self.env_steps / (self.cfg.explore_fraction * self.total_steps + 1e-9))
        return self.cfg.temperature_start + frac * (self.cfg.temperature_end - self.cfg.temperature_start)

    def _greedy(self, Q, E, bias, offsets, ids, values: nn.Module) -> torch.Tensor:
        """SlateQ's top-k: among the choice model's top candidates, the k largest v(s, j) · (Q(s, j) − Q(s, none))."""
        m = min(max(self.cfg.candidates, self.k), self.num_items)
        if ids is not None and ids.numel():
            most = int((offsets[1:] - offsets[:-1]).max())
            m = min(m, self.num_items - most)
        if self.cfg.gamma == 0 or m <= self.k:
            return op("catalog_topk")(Q, E, self.k, bias=bias, exclude_offsets=offsets, exclude_ids=ids)[1]
        logits, cand = op("catalog_topk")(Q, E, m, bias=bias, exclude_offsets=offsets, exclude_ids=ids)
        item_q, none_q = values(Q.detach(), E.detach(), cand)
        gain = (item_q - none_q.unsqueeze(1)).clamp_min(1e-6)
        score = logits + gain.log()  # log v + log(Q - Q_none): the logsumexp shared by a row does not matter
        best = score.topk(self.k, dim=1).indices
        return cand.gather(1, best)

    # --------------------------------------------------------------------------------------------- act
    @torch.no_grad()
    def act(self, obs, explore: bool = False) -> torch.Tensor:
        hist = histories(obs)
        with eval_mode(self.scorer):
            Q, E, bias = self.scorer(hist)
        offsets, ids = self._exclusion(obs, hist)
        if not explore:
            return self._greedy(Q, E, bias, offsets, ids, self.values)
        seed = self.seed * 1_000_003 + self.env_steps
        return op("catalog_sample")(
            Q, E, self.k, seed, bias=bias, temperature=self.temperature(), exclude_offsets=offsets, exclude_ids=ids
        )[0]

    # ----------------------------------------------------------------------------------------- observe
    def _make_replay(self, num_envs: int):
        from recengine.buffers import PrioritizedReplay

        L, k = self.history_len, self.k
        fields = {
            "hist": ((L,), torch.int64),
            "user": ((), torch.int64),
            "slate": ((k,), torch.int64),
            "outcome": ((), torch.int64),  # the clicked slate position, k = no click
            "reward": ((), torch.float32),
            "done": ((), torch.bool),
            "next_hist": ((L,), torch.int64),
        }
        capacity = -(-self.cfg.buffer_size // num_envs) * num_envs
        return PrioritizedReplay(capacity, fields, alpha=0.0, n_step=1, gamma=self.cfg.gamma, num_envs=num_envs)

    def observe(self, step) -> None:
        self.env_steps += 1
        hist = histories(step.obs)
        if self.replay is None:
            self.replay = self._make_replay(hist.shape[0])
        users = step.obs.get("user_id") if isinstance(step.obs, dict) else None
        users = torch.full((hist.shape[0],), -1) if users is None else torch.as_tensor(users).to(torch.int64)
        outcome = torch.where(step.clicks >= 0, step.clicks, torch.full_like(step.clicks, self.k))
        self.replay.add(
            hist=hist,
            user=users.reshape(-1),
            slate=step.slates.to(torch.int64),
            outcome=outcome.to(torch.int64),
            reward=step.rewards.to(torch.float32),
            done=step.done.clone(),
            next_hist=histories(step.next_obs),
        )
        self.transitions += hist.shape[0]

    # ------------------------------------------------------------------------------------------ update
    def update(self) -> dict[str, float]:
        if self.replay is None or self.transitions < max(self.cfg.learning_starts, self.cfg.batch_size):
            return {}
        stats = {}
        for _ in range(self.cfg.updates_per_step):
            stats = self._update_once()
        return stats

    def _exclusion_of(self, hist: torch.Tensor, users: torch.Tensor):
        if self.logged is not None and self.cfg.exclude_logged and bool((users >= 0).all()):
            return self._batch_exclusion(hist, users)
        return exclusion_csr(hist) if self.cfg.exclude_seen else (None, None)

    def _update_once(self) -> dict[str, float]:
        cfg = self.cfg
        batch, _, _ = self.replay.sample(cfg.batch_size, 1.0, generator=self.generator)
        hist, slate, outcome, users = batch["hist"], batch["slate"], batch["outcome"], batch["user"]
        offsets, ids = self._exclusion_of(hist, users)
        Q, E, bias = self.scorer(hist)
        log_pi = slate_log_probs(Q, E, bias, slate, exclude_offsets=offsets, exclude_ids=ids)
        choice = choice_nll(log_pi, self.no_click, outcome)
        loss = choice
        stats = {"choice_nll": float(choice.detach()), "no_click": float(self.no_click.detach())}
        if cfg.kl_weight > 0:
            kl = policy_kl(self.scorer, self.reference, hist, offsets, ids)
            loss = loss + cfg.kl_weight * kl
            stats["kl"] = float(kl.detach())
        if cfg.gamma > 0 and cfg.value_weight > 0:
            td = self._td_loss(batch, Q.detach(), E.detach(), slate, outcome)
            loss = loss + cfg.value_weight * td
            stats["td"] = float(td.detach())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_([*self.scorer.parameters(), *self.values.parameters(), self.no_click], cfg.grad_clip)
        self.optimizer.step()
        self.updates += 1
        self._sync_target()
        return stats

    def _td_loss(self, batch, f, E, slate, outcome) -> torch.Tensor:
        """Huber TD loss of the value of the observed outcome (the clicked item, or none) towards
        r + γ Q_target(s', A'), A' the greedy slate at s' and Q(s', A') its SlateQ decomposition."""
        cfg, k = self.cfg, self.k
        item_q, none_q = self.values(f, E, slate)
        q_taken = torch.cat([item_q, none_q.unsqueeze(1)], 1).gather(1, outcome.unsqueeze(1)).squeeze(1)
        with torch.no_grad():
            next_hist = batch["next_hist"]
            n_off, n_ids = self._exclusion_of(next_hist, batch["user"])
            with eval_mode(self.scorer):
                Qn, En, bn = self.scorer(next_hist)
            next_slate = self._greedy(Qn, En, bn, n_off, n_ids, self.target_values)
            n_log_pi = slate_log_probs(Qn, En, bn, next_slate, exclude_offsets=n_off, exclude_ids=n_ids)
            p = slate_choice_log_probs(n_log_pi, self.no_click.detach()).exp()
            nq, nnone = self.target_values(Qn, En, next_slate)
            next_v = (p[:, :k] * nq).sum(1) + p[:, k] * nnone
            target = batch["reward"] + batch["discount"] * next_v
        return nn.functional.huber_loss(q_taken, target, delta=cfg.huber_delta)

    @torch.no_grad()
    def _sync_target(self) -> None:
        tau = self.cfg.tau
        for pt, po in zip(self.target_values.parameters(), self.values.parameters()):
            pt.mul_(1 - tau).add_(po.detach(), alpha=tau)

    def num_updates(self) -> int:
        return self.updates

    # --------------------------------------------------------------------------------------- diagnostics
    @torch.no_grad()
    def click_probabilities(self, obs, slates: torch.Tensor) -> torch.Tensor:
        """(B, k + 1) the learnt choice model's P(click slate item j | s, A), then P(no click)."""
        hist = histories(obs)
        with eval_mode(self.scorer):
            Q, E, bias = self.scorer(hist)
        offsets, ids = self._exclusion(obs, hist)
        log_pi = slate_log_probs(Q, E, bias, torch.as_tensor(slates), exclude_offsets=offsets, exclude_ids=ids)
        return slate_choice_log_probs(log_pi, self.no_click).exp()
