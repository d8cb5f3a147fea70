"""The double-DQN update as one step with no host sync, capturable in a CUDA graph (the W4 bench step).

    step = DQNStep(tables, mlp, target_tables, target_mlp, lr=1e-4, capture=True)
    loss, best, priority = step(batch)   # batch: hist, next_hist (B, L), action, reward, discount, weights (B,)
    replay.update_priorities(indices, priority.cpu())

Q(s, a) = <f(s), e_a> with f(s) = mlp(mean of the history's item rows) and e_a the item's row of `tables`;
the online network picks a* = argmax_a Q(s', a) over the whole catalog (never the B x N logits), the target
network values it, and the importance-weighted Huber TD loss trains the MLP (SyncFreeAdam) and the item rows
(the tables' fused optimizer, touched rows only). `priority` is |td| + eps per transition (raw: the replay
applies its own alpha).

Where the host waits: only where a batch enters. `__call__` checks the batch's values there (ids inside the
catalog, finite rewards, discounts in [0, 1], positive weights) on the tensors as given (the replay's host
tensors: no device involved), copies it into fixed device tensors, then runs the step, which reads nothing
back: no `.item()`, `nonzero`, data-dependent shape or branch on a tensor's value. With capture=True on CUDA
the step is replayed from a CUDA graph from the second call on (recengine.train.graph_step). The lookups'
in-kernel reports land in `error` (recengine.ops.sync_free.NO_ERROR in every slot unless a bad id got past the
batch check, which rules them out; the kernels skip such an id, so the tables stay in bounds).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from recengine.nn import EmbeddingTables
from recengine.ops import td_loss
from recengine.ops._checks import check_number, check_tensor
from recengine.ops.sync_free import catalog_argmax, embedding_bag_reported
from recengine.train.graph_step import GraphStep
from recengine.train.sync_free_adam import SyncFreeAdam
from recengine.train.sync_free_lookup import new_error_flag, sync_free_lookup

__all__ = ["DQNStep", "BATCH_FIELDS"]

#: the batch's fields: name -> (trailing shape: "L" the history length, dtype)
BATCH_FIELDS = {
    "hist": ("L", torch.int64),
    "next_hist": ("L", torch.int64),
    "action": ("", torch.int64),
    "reward": ("", torch.float32),
    "discount": ("", torch.float32),
    "weights": ("", torch.float32),
}


def check_dqn_batch(batch: dict[str, Tensor], num_items: int) -> None:
    """The values of a batch, checked once where it enters the step (one host read for all of them)."""
    missing = [name for name in BATCH_FIELDS if name not in batch]
    if missing:
        raise KeyError(f"batch: missing fields {missing}; expected {list(BATCH_FIELDS)}")
    size = batch["action"].shape[0] if isinstance(batch["action"], Tensor) else None
    for name, (trail, dtype) in BATCH_FIELDS.items():
        check_tensor(name, batch[name], dtypes=(dtype,), ndim=2 if trail else 1)
        if batch[name].shape[0] != size or (trail and batch[name].shape != batch["hist"].shape):
            raise ValueError(f"{name}: shape {tuple(batch[name].shape)} does not match the batch")
    if size == 0:
        raise ValueError("batch: holds no transition")
    flags = torch.stack(
        [
            torch.stack(
                [((batch[n] < 0) | (batch[n] >= num_items)).any() for n in ("hist", "next_hist", "action")]
            ).any(),
            ~torch.isfinite(batch["reward"]).all(),
            ((batch["discount"] < 0) | (batch["discount"] > 1) | batch["discount"].isnan()).any(),
            ~((batch["weights"] > 0) & torch.isfinite(batch["weights"])).all(),
        ]
    ).tolist()
    messages = (
        f"hist/next_hist/action: an item id outside [0, {num_items})",
        "reward: holds NaN or infinite values",
        "discount: every value must lie in [0, 1]",
        "weights: every importance weight must be finite and > 0",
    )
    for bad, message in zip(flags, messages):
        if bad:
            raise (IndexError if message.startswith("hist") else ValueError)(message)


class DQNStep:
    """One double-DQN update per call, as described in the module docstring.

    Args:
        tables: the item rows (EmbeddingTables, one table, mean pooling, a fused optimizer); trained.
        mlp: the state network f; trained by SyncFreeAdam(lr).
        target_tables, target_mlp: the target network (not trained here; sync it between steps as you like).
        lr: the MLP's Adam learning rate.
        huber_delta, priority_eps: td_loss's huber_delta and eps (alpha = 1: raw priorities).
        capture: on CUDA, replay the step from a CUDA graph from the second call on (batches of one shape).
    """

    def __init__(
        self,
        tables: EmbeddingTables,
        mlp: nn.Module,
        target_tables: EmbeddingTables,
        target_mlp: nn.Module,
        *,
        lr: float,
        huber_delta: float = 1.0,
        priority_eps: float = 1e-6,
        capture: bool = False,
    ):
        if tables.num_tables != 1 or tables.pooling != "mean" or tables.optimizer is None:
            raise ValueError("tables: expected one item table with mean pooling and a fused optimizer")
        if target_tables.weights.shape != tables.weights.shape:
            raise ValueError("target_tables: must hold as many rows of the same dim as tables")
        self.tables, self.mlp, self.target_tables, self.target_mlp = tables, mlp, target_tables, target_mlp
        self.device = tables.weights.device
        self.num_items = tables.weights.shape[0]
        self.huber_delta = check_number("huber_delta", huber_delta, minimum=0.0, exclusive=True)
        self.priority_eps = check_number("priority_eps", priority_eps, minimum=0.0)
        self.optimizer = SyncFreeAdam(mlp.parameters(), lr)
        self.error = new_error_flag(self.device)
        self.capture = capture
        self.inputs: dict[str, Tensor] | None = None
        self._graph_step: GraphStep | None = None

    def _bind(self, batch: dict[str, Tensor]) -> None:
        """Fixed device tensors for batches of this shape, and the step that reads them."""
        self.inputs = {name: torch.empty_like(batch[name], device=self.device) for name in BATCH_FIELDS}
        size, history = batch["hist"].shape
        self.offsets = torch.cat(
            [
                torch.arange(size, device=self.device) * history,
                size * history + torch.arange(size + 1, device=self.device),
            ]
        )
        self.next_offsets = torch.arange(size + 1, device=self.device) * history
        self.zeros = torch.zeros(size, device=self.device)
        self._graph_step = GraphStep(self._step, self.device, self.capture, prepare=self.optimizer.zero_grad)

    def __call__(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """load(batch), then run(): (loss 0-d, best next action (B,) int64, new priority (B,)), device
        tensors (with capture, the same tensors every call: copy what you keep)."""
        self.load(batch)
        return self.run()

    def load(self, batch: dict[str, Tensor]) -> None:
        """Where the batch enters: its values checked, then copied into the step's fixed device tensors."""
        check_dqn_batch(batch, self.num_items)
        if self.inputs is None or self.inputs["hist"].shape != batch["hist"].shape:
            self._bind(batch)
        for name, t in self.inputs.items():
            t.copy_(batch[name], non_blocking=True)

    def run(self) -> tuple[Tensor, Tensor, Tensor]:
        """The update on the loaded batch (eager, or replayed from a CUDA graph): no host sync."""
        if self._graph_step is None:
            raise RuntimeError("DQNStep.run: load a batch first")
        return self._graph_step()

    def _step(self) -> tuple[Tensor, Tensor, Tensor]:
        """The update on self.inputs: no host sync from here on."""
        x = self.inputs
        size = x["action"].shape[0]
        ids = torch.cat([x["hist"].reshape(-1), x["action"]])
        looked_up = sync_free_lookup(self.tables, ids, self.offsets, self.error)
        f = self.mlp(looked_up[:size])
        q_sa = (f * looked_up[size:]).sum(-1)
        with torch.no_grad():
            next_ids = x["next_hist"].reshape(-1)
            pooled_next, report = embedding_bag_reported(
                self.tables.weights, self.tables.table_offsets, next_ids, self.next_offsets, pooling="mean"
            )
            torch.minimum(self.error, report, out=self.error)
            best = catalog_argmax(self.mlp(pooled_next), self.tables.weights)
            target = self.target_tables
            target_next, _ = embedding_bag_reported(
                target.weights, target.table_offsets, next_ids, self.next_offsets, pooling="mean"
            )
            f_target = self.target_mlp(target_next)
            next_q = (f_target * self.target_tables.weights[best]).sum(-1)
        loss, _, priority = td_loss(
            q_sa,
            next_q,
            x["reward"],
            self.zeros,
            x["discount"],
            x["weights"],
            huber_delta=self.huber_delta,
            alpha=1.0,
            eps=self.priority_eps,
        )
        loss.backward()
        self.optimizer.step()
        return loss.detach(), best, priority
