"""REINFORCE with a softmax policy over the whole catalogue and the top-K off-policy correction
(Chen et al. 2019; the math is in recengine.agents.topk_correction).

π(a|s) = softmax_a((<f(s), e_a> + b_a) / T) over the items not in the user's history.

- acting: a slate of k items drawn without replacement from π by catalog_sample, which also returns each
  drawn item's log π from the same pass (kept for the logged-data propensities); greedy = catalog_topk;
- on-policy (in the simulator): every slate item a shown at step t gets the return R = 1[a clicked] · G_t
  (G_t the discounted clicks of the rest of the session); the loss is −mean(λ_K · R · log π(a|s)), so only
  clicked items carry a term (as in Chen et al., who train on the items users interacted with). An optional
  running-mean baseline b (R − b) also pushes shown-but-ignored items down; combined with λ_K, which is
  largest for items π already neglects, that keeps driving their log π towards −∞, so it is off by default;
- off-policy (`learn_from_logs`): samples logged by another policy β; a behaviour head β(a|s) (its own item
  table, on the detached state) is fitted by cross-entropy on the logged items, and each term is weighted by
  min(π/β, c) · λ_K;
- the differentiable log π(a|s) = logit(a) − logsumexp: one catalog_cross_entropy pass per state gives the
  logsumexp, the slate items' logits are dot products;
- conservative (`kl_weight` > 0): each step also adds kl_weight · KL(π_start || π) on the batch's states, π_start
  a frozen copy of the scorer as the agent received it (the large model, for the hybrid: recengine.agents.anchor).
"""

from __future__ import annotations

import torch
from torch import nn

from recengine.agents.anchor import frozen_copy, policy_kl
from recengine.agents.config import ReinforceConfig
from recengine.agents.policy_base import Policy, histories, op
from recengine.agents.topk_correction import corrected_pg_loss
from recengine.data.exclusion import exclusion_csr
from recengine.nn.gather_rows import gather_rows
from recengine.nn.modes import eval_mode


def slate_log_probs(Q, E, bias, slate, *, temperature=1.0, exclude_offsets=None, exclude_ids=None) -> torch.Tensor:
    """Differentiable log π(a|s) (B, k) of each slate item under softmax((Q E^T + bias) / T) without the
    excluded items: logit(a) − logsumexp, the logsumexp taken from catalog_cross_entropy of the first item."""

    logits = ((Q.unsqueeze(1) * gather_rows(E, slate)).sum(-1) + gather_rows(bias, slate)) / temperature  # (B, k)
    ce_first = op("catalog_cross_entropy")(
        Q,
        E,
        slate[:, 0],
        bias=bias,
        temperature=temperature,
        exclude_offsets=exclude_offsets,
        exclude_ids=exclude_ids,
        reduction="none",
    )
    logsumexp = logits[:, 0] + ce_first  # CE = −log π(a0) = lse − logit(a0)
    return logits - logsumexp.unsqueeze(1)


class SessionReturns:
    """Turns the vectorised stream of steps into (hist, slate, item_return) samples as sessions end:
    item_return[i] = 1[slate item i clicked] · G_t, G_t = Σ_j γ^j r_{t+j} to the end of the user's session."""

    def __init__(self, gamma: float):
        self.gamma = gamma
        self.steps: list[tuple] = []  # (hist, slate, item_clicked, reward) per vectorised step
        self.start: torch.Tensor | None = None  # per user: index in `steps` where the open session began
        self.ready: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self.count = 0

    def add(self, step) -> None:
        hist = histories(step.obs)
        B, k = step.slates.shape
        if self.start is None:
            self.start = torch.zeros(B, dtype=torch.int64)
        item_clicked = torch.zeros(B, k)
        clicked = step.clicks >= 0
        item_clicked[clicked, step.clicks[clicked]] = 1.0
        self.steps.append((hist, step.slates.to(torch.int64), item_clicked, step.rewards.clone()))
        if step.done.any():
            self._close(step.done.nonzero().flatten())

    def _close(self, users: torch.Tensor) -> None:
        T = len(self.steps)
        start = self.start[users]
        G = torch.zeros(users.numel())
        for t in range(T - 1, int(start.min()) - 1, -1):
            hist, slate, item_clicked, reward = self.steps[t]
            live = start <= t  # step t belongs to the session that just ended
            G = torch.where(live, reward[users] + self.gamma * G, G)
            rows = users[live]
            self.ready.append((hist[rows], slate[rows], item_clicked[rows] * G[live].unsqueeze(1)))
            self.count += rows.numel()
        self.start[users] = T
        keep_from = int(self.start.min())  # steps no open session needs any more
        if keep_from > 0:
            self.steps = self.steps[keep_from:]
            self.start -= keep_from

    def pop(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """All finished samples (hist (M, L), slate (M, k), item_return (M, k)), emptied."""
        out = tuple(torch.cat([r[j] for r in self.ready]) for j in range(3))
        self.ready, self.count = [], 0
        return out


class BehaviourHead(nn.Module):
    """β(a|s) = softmax(<stopgrad f(s), w_a> + c_a): the logging policy's estimate (its own item table)."""

    def __init__(self, num_items: int, dim: int):
        super().__init__()
        self.table = nn.Parameter(torch.randn(num_items, dim) * 0.01)
        self.bias = nn.Parameter(torch.zeros(num_items))


class ReinforceAgent(Policy):
    """`scorer`: nn.Module mapping (B, L) histories to (Q (B, D), E (N, D), bias (N,)) (see agents.scorer)."""

    name = "reinforce"
    learns = True

    def __init__(self, scorer: nn.Module, num_items: int, slate_size: int, cfg: ReinforceConfig, seed: int = 0):
        self.cfg, self.k, self.num_items, self.seed = cfg, slate_size, num_items, seed
        self.policy = scorer
        self.reference = frozen_copy(scorer) if cfg.kl_weight > 0 else None
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=cfg.lr)
        self.behaviour: BehaviourHead | None = None
        self.env_steps, self.updates = 0, 0
        self.baseline = 0.0
        self._returns: SessionReturns | None = None

    # --------------------------------------------------------------------------------------------- act
    def _scores(self, hist):
        with eval_mode(self.policy):
            return self.policy(hist)

    @torch.no_grad()
    def act_with_log_probs(self, obs, explore: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """(slates (B, k), log π of each slate item (B, k)); sampled when exploring, top-k otherwise."""
        hist = histories(obs)
        Q, E, bias = self._scores(hist)
        offsets, ids = exclusion_csr(hist) if self.cfg.exclude_seen else (None, None)
        T = self.cfg.temperature
        if explore:
            return op("catalog_sample")(
                Q,
                E,
                self.k,
                self.seed * 1_000_003 + self.env_steps,
                bias=bias,
                temperature=T,
                exclude_offsets=offsets,
                exclude_ids=ids,
            )
        _, slates = op("catalog_topk")(Q, E, self.k, bias=bias, temperature=T, exclude_offsets=offsets, exclude_ids=ids)
        return slates, slate_log_probs(Q, E, bias, slates, temperature=T, exclude_offsets=offsets, exclude_ids=ids)

    def act(self, obs, explore: bool = False) -> torch.Tensor:
        return self.act_with_log_probs(obs, explore)[0]

    # ----------------------------------------------------------------------------------------- observe
    def observe(self, step) -> None:
        self.env_steps += 1
        self.returns.add(step)

    @property
    def returns(self) -> SessionReturns:
        if self._returns is None:
            self._returns = SessionReturns(self.cfg.gamma)
        return self._returns

    # ------------------------------------------------------------------------------------------ update
    def update(self) -> dict[str, float]:
        if self.returns.count < self.cfg.min_batch:
            return {}
        hist, slate, item_return = self.returns.pop()
        if self.cfg.baseline:
            # running mean of the per-item return; non-clicked items then get a negative advantage
            mean = float(item_return.mean())
            self.baseline = 0.9 * self.baseline + 0.1 * mean if self.updates else mean
            return self._policy_step(hist, slate, item_return - self.baseline)
        # without a baseline only clicked items carry a term: rows without a click are skipped
        keep = (item_return > 0).any(1)
        return self._policy_step(hist[keep], slate[keep], item_return[keep])

    def _policy_step(self, hist, slate, advantage, log_beta=None) -> dict[str, float]:
        cfg = self.cfg
        Q, E, bias = self.policy(hist)
        offsets, ids = exclusion_csr(hist) if cfg.exclude_seen else (None, None)
        log_pi = slate_log_probs(
            Q, E, bias, slate, temperature=cfg.temperature, exclude_offsets=offsets, exclude_ids=ids
        )
        loss, stats = corrected_pg_loss(
            log_pi.reshape(-1),
            advantage.reshape(-1),
            self.k,
            log_beta=None if log_beta is None else log_beta.reshape(-1),
            clip=cfg.weight_clip,
            topk=cfg.topk_correction,
        )
        if self.reference is not None:
            kl = policy_kl(self.policy, self.reference, hist, offsets, ids)
            loss = loss + cfg.kl_weight * kl
            stats["kl"] = float(kl.detach())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.policy.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self.updates += 1
        return {"loss": float(loss.detach()), "baseline": self.baseline, **stats}

    # ------------------------------------------------------------------------------- from logged data
    def learn_from_logs(
        self,
        hist: torch.Tensor,
        slate: torch.Tensor,
        item_return: torch.Tensor,
        *,
        epochs: int = 1,
        batch_size: int | None = None,
    ) -> list[dict[str, float]]:
        """Off-policy REINFORCE on samples logged by another policy β (unknown to the agent): hist (M, L),
        slate (M, k) the items shown, item_return (M, k) as built by SessionReturns. Each step fits the behaviour
        head β on the logged slates, then takes the top-K-corrected, importance-weighted policy step."""
        cfg = self.cfg
        batch_size = batch_size or cfg.batch_size
        dim = self.policy(hist[:1])[0].shape[1]
        if self.behaviour is None:
            self.behaviour = BehaviourHead(self.num_items, dim)
            self.behaviour_opt = torch.optim.Adam(self.behaviour.parameters(), lr=cfg.lr * 3)
        baseline = float(item_return.mean()) if cfg.baseline else 0.0
        g = torch.Generator().manual_seed(self.seed + 1)
        history = []
        for _ in range(epochs):
            order = torch.randperm(hist.shape[0], generator=g)
            for lo in range(0, hist.shape[0], batch_size):
                idx = order[lo : lo + batch_size]
                h, sl = hist[idx], slate[idx]
                offsets, ids = exclusion_csr(h) if cfg.exclude_seen else (None, None)
                # behaviour head on the detached state: max likelihood of the logged slates
                with torch.no_grad():
                    Q = self.policy(h)[0]
                log_beta = slate_log_probs(
                    Q, self.behaviour.table, self.behaviour.bias, sl, exclude_offsets=offsets, exclude_ids=ids
                )
                beta_loss = -log_beta.mean()
                self.behaviour_opt.zero_grad(set_to_none=True)
                beta_loss.backward()
                self.behaviour_opt.step()
                stats = self._policy_step(h, sl, item_return[idx] - baseline, log_beta=log_beta.detach())
                history.append({**stats, "beta_nll": float(beta_loss.detach())})
        return history

    def num_updates(self) -> int:
        return self.updates
