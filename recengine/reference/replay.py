"""Plain reference for the replay family: the truth tests and benchmarks share.

- `sample_indices_reference`, `importance_weights_reference`, `n_step_reference`: the sampling math of
  recengine.buffers.PrioritizedReplay written the obvious way (cumulative sums, Python loops).
- `NumpySumTree` / `PrioritizedReplayReference`: a prioritized replay built on a vectorised NumPy
  sum-tree, what one writes without a compiled extension; the benchmark's baseline.
- `td_loss_reference`: the DQN TD loss in plain PyTorch, differentiable through autograd.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


# ------------------------------------------------------------------------------ sampling math
def stratified_masses(total: float, uniforms: torch.Tensor) -> torch.Tensor:
    """Sample b of a batch of B draws the mass (b + u_b) * total / B: one draw from each of B equal strata."""
    batch = uniforms.numel()
    return (torch.arange(batch, dtype=torch.float64) + uniforms.double()) * (total / batch)


def sample_indices_reference(leaf_priorities: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """Proportional stratified sampling: the slot whose cumulative-priority interval holds each mass.

    leaf_priorities (n,) are the stored p_i^alpha (>= 0, not all 0); uniforms (B,) in [0, 1).
    Returns int64 (B,) with P(i) = p_i^alpha / sum_j p_j^alpha; zero-priority slots are never drawn.
    """
    p = leaf_priorities.double()
    cum = torch.cumsum(p, 0)
    masses = stratified_masses(float(cum[-1]), uniforms)
    idx = torch.searchsorted(cum, masses, right=True)
    return idx.clamp_(max=p.numel() - 1)


def importance_weights_reference(leaf_priorities: torch.Tensor, indices: torch.Tensor, beta: float) -> torch.Tensor:
    """w_i = (N * P(i))^-beta / max_j (N * P(j))^-beta (Schaul et al. 2016, eq. 3 and Algorithm 1).

    N is the number of stored items (len(leaf_priorities)); the max runs over every stored item that can
    be drawn (P(j) > 0), i.e. it is the weight of the smallest positive priority, so w lies in (0, 1].
    """
    p = leaf_priorities.double()
    probs = p / p.sum()
    n = p.numel()
    raw = (n * probs[indices]) ** -beta
    max_w = (n * probs[probs > 0].min()) ** -beta
    return (raw / max_w).float()


def n_step_reference(
    rewards, dones, indices, *, position: int, size: int, capacity: int, n_step: int, gamma: float, num_envs: int = 1
):
    """n-step returns from a ring buffer, one sample at a time (the slow, obvious loop).

    rewards/dones are the stored columns (capacity,); the transition after slot i in the same
    environment stream is slot (i + num_envs) % capacity. From slot i, the steps taken are i, its
    successor, ... up to n_step of them, stopping after the first done and never past the newest
    stored transition. Returns (n_reward, n_discount, last, n_done, n_steps): the discounted reward
    sum_k gamma^k r_k, gamma^m * (1 - done_last), the slot of the m-th step, its done flag, and m.
    """
    out = []
    newest_age = lambda i: (position - i - 1) % capacity  # noqa: E731  slots between i and the newest
    for i in indices.tolist():
        total, k, j = 0.0, 0, i
        while True:
            total += gamma**k * float(rewards[j])
            k += 1
            if bool(dones[j]) or k == n_step or (k * num_envs) > newest_age(i):
                break
            j = (j + num_envs) % capacity
        done = bool(dones[j])
        out.append((total, gamma**k * (0.0 if done else 1.0), j, done, k))
    n_reward, n_discount, last, n_done, n_steps = zip(*out) if out else ((),) * 5
    return (
        torch.tensor(n_reward, dtype=torch.float32),
        torch.tensor(n_discount, dtype=torch.float32),
        torch.tensor(last, dtype=torch.int64),
        torch.tensor(n_done, dtype=torch.bool),
        torch.tensor(n_steps, dtype=torch.int64),
    )


# ------------------------------------------------------------------ the NumPy prioritized replay
class NumpySumTree:
    """Sum-tree and min-tree over a power-of-two number of leaves, vectorised with NumPy.

    Layout as in the C++ kernels: node 1 is the root, node k has children 2k and 2k+1, leaf i is
    node leaves + i. Updates touch the affected ancestors level by level: with `unique` (the default) each level's
    nodes are deduplicated first (np.unique); without, a node shared by several updates is recomputed once per
    update, each time to the same value (no sort per level: the fastest plain NumPy form).
    """

    def __init__(self, capacity: int, *, unique: bool = True):
        self.unique = unique
        self.leaves = 1 << max(0, math.ceil(math.log2(max(capacity, 1))))
        self.depth = int(math.log2(self.leaves))
        self.sum = np.zeros(2 * self.leaves)
        self.min = np.full(2 * self.leaves, np.inf)

    def update(self, indices: np.ndarray, values: np.ndarray) -> None:
        nodes = np.asarray(indices, dtype=np.int64) + self.leaves
        self.sum[nodes] = values
        self.min[nodes] = np.where(values > 0, values, np.inf)
        for _ in range(self.depth):
            nodes = np.unique(nodes // 2) if self.unique else nodes // 2
            self.sum[nodes] = self.sum[2 * nodes] + self.sum[2 * nodes + 1]
            self.min[nodes] = np.minimum(self.min[2 * nodes], self.min[2 * nodes + 1])

    def sample(self, uniforms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Stratified descent; returns (leaf indices, leaf values)."""
        total = self.sum[1]
        batch = uniforms.shape[0]
        mass = (np.arange(batch) + uniforms) * (total / batch)
        nodes = np.ones(batch, dtype=np.int64)
        for _ in range(self.depth):
            left = self.sum[2 * nodes]
            right_ok = self.sum[2 * nodes + 1] > 0
            go_right = (mass >= left) & right_ok
            mass = np.where(go_right, mass - left, mass)
            nodes = 2 * nodes + go_right
        return nodes - self.leaves, self.sum[nodes]


class PrioritizedReplayReference:
    """One-step prioritized replay on NumpySumTree and torch column storage (the benchmark baseline).

    Same calls as recengine.buffers.PrioritizedReplay for n_step=1: add(**columns), sample(batch, beta,
    generator) -> (batch dict with "discount", indices, weights), update_priorities, len().
    """

    def __init__(
        self, capacity: int, fields: dict, alpha: float = 0.6, gamma: float = 0.99, *, unique_levels: bool = True
    ):
        self.capacity, self.alpha, self.gamma = capacity, alpha, gamma
        self.storage = {name: torch.zeros((capacity, *shape), dtype=dtype) for name, (shape, dtype) in fields.items()}
        self.tree = NumpySumTree(capacity, unique=unique_levels)
        self.position = 0
        self.size = 0
        self.max_priority = 1.0

    def __len__(self) -> int:
        return self.size

    def add(self, **columns) -> None:
        n = next(iter(columns.values())).shape[0]
        slots = (self.position + torch.arange(n)) % self.capacity
        for name, value in columns.items():
            self.storage[name][slots] = value
        self.tree.update(slots.numpy(), np.full(n, self.max_priority**self.alpha))
        self.position = (self.position + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int, beta: float, generator: torch.Generator | None = None):
        u = torch.rand(batch_size, generator=generator, dtype=torch.float64).numpy()
        idx, values = self.tree.sample(u)
        weights = (self.tree.min[1] / values) ** beta
        index = torch.from_numpy(idx)
        batch = {name: col[index] for name, col in self.storage.items()}
        batch["discount"] = self.gamma * (1.0 - batch["done"].float())
        return batch, index, torch.from_numpy(weights).float()

    def update_priorities(self, indices: torch.Tensor, priorities: torch.Tensor) -> None:
        p = priorities.detach().double().numpy()
        if not np.isfinite(p).all() or (p < 0).any():
            raise ValueError("priorities: must be finite and >= 0")
        self.tree.update(indices.numpy(), p**self.alpha)
        self.max_priority = max(self.max_priority, float(p.max(initial=0.0)))


# ------------------------------------------------------------------------------------ TD loss
def td_loss_reference(
    q_sa, next_q, reward, done, discount, weight, *, huber_delta: float = 1.0, alpha: float = 0.6, eps: float = 1e-6
):
    """target = reward + discount * (1 - done) * next_q; td = target - q_sa;
    loss = mean(weight * huber_delta(td)); new_priority = (|td| + eps)^alpha (no gradient).

    Gradients flow to q_sa and to next_q when it requires grad (DQN callers compute next_q without grad).
    """
    done = done.to(q_sa.dtype)
    target = reward + discount * (1 - done) * next_q
    td = target - q_sa
    per_sample = F.huber_loss(td, torch.zeros_like(td), reduction="none", delta=huber_delta)
    loss = (weight * per_sample).mean()
    new_priority = (td.detach().abs() + eps) ** alpha
    return loss, td, new_priority
