"""Plain-PyTorch truth for the table-batched embedding bag family (tests and benchmarks import it).

Layout (as recengine.ops.embedding_bag): `weights` (R, D) float32 holds every table's rows;
table t owns rows [table_offsets[t], table_offsets[t+1]); `ids` (N,) int32/int64 are local to their
table; `offsets` (T*B+1,) int64 is table-major (bag j = t*B + b is ids[offsets[j]:offsets[j+1]]);
the result is (B, T*D) with table t in columns [t*D, (t+1)*D). An empty bag pools to zeros.

Besides the forward this module holds:
- `fused_update_reference`: the fused backward+optimizer step done densely (the math the fused
  kernels must match): SGD, row-wise Adagrad, lazy Adam;
- the plain-PyTorch training step users write without recengine, used as the benchmark reference:
  `EmbeddingBagLoop` (one nn.EmbeddingBag per table) and `sparse_rowwise_adagrad_` (coalesce the
  sparse gradient, then the row-wise Adagrad update).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from recengine.ops.jagged_layout import bag_of_each_id


def global_rows(table_offsets: torch.Tensor, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """(N,) int64: each id's row in the stacked `weights`."""
    num_tables = table_offsets.numel() - 1
    batch = (offsets.numel() - 1) // num_tables
    bag = bag_of_each_id(offsets, ids.numel())
    return table_offsets[bag // batch] + ids.long()


def embedding_bag_reference(
    weights: torch.Tensor,
    table_offsets: torch.Tensor,
    ids: torch.Tensor,
    offsets: torch.Tensor,
    per_sample_weights: torch.Tensor | None = None,
    pooling: str = "sum",
) -> torch.Tensor:
    """Pooled lookup (B, T*D); differentiable w.r.t. weights and per_sample_weights."""
    num_tables = table_offsets.numel() - 1
    batch = (offsets.numel() - 1) // num_tables
    dim = weights.shape[1]
    bag = bag_of_each_id(offsets, ids.numel())
    rows = table_offsets[bag // batch] + ids.long()
    vals = weights[rows]
    if per_sample_weights is not None:
        vals = vals * per_sample_weights[:, None]
    pooled = torch.zeros(num_tables * batch, dim, dtype=weights.dtype, device=weights.device).index_add(0, bag, vals)
    if pooling == "mean":
        lengths = (offsets[1:] - offsets[:-1]).clamp(min=1)
        pooled = pooled / lengths[:, None].to(weights.dtype)
    return pooled.view(num_tables, batch, dim).transpose(0, 1).reshape(batch, num_tables * dim)


def fused_update_reference(
    weights: torch.Tensor,
    table_offsets: torch.Tensor,
    ids: torch.Tensor,
    offsets: torch.Tensor,
    grad_output: torch.Tensor,
    per_sample_weights: torch.Tensor | None = None,
    pooling: str = "sum",
    *,
    optimizer: str,
    lr: float,
    eps: float = 1e-8,
    betas: tuple[float, float] = (0.9, 0.999),
    state: dict[str, torch.Tensor] | None = None,
    step: int = 1,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One optimizer step of the rows the batch touches, done densely; returns (new weights, new state).

    The gradient of the table is the full dense gradient of `embedding_bag_reference` (so duplicates are
    summed); only the touched rows (every row some id refers to, even if its gradient is zero) change:
      "sgd":             w -= lr * g
      "rowwise_adagrad": state["sum"] (R,) += mean(g*g over D); w -= lr * g / (sqrt(sum) + eps)
      "adam":            lazy Adam with a global step count `step` (this step's number, from 1):
                         m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g*g (state "m", "v", (R, D));
                         w -= lr * (m / (1 - b1**step)) / (sqrt(v / (1 - b2**step)) + eps)
    """
    w = weights.detach().clone().requires_grad_(True)
    out = embedding_bag_reference(w, table_offsets, ids, offsets, per_sample_weights, pooling)
    (grad,) = torch.autograd.grad(out, w, grad_output)
    touched = torch.unique(global_rows(table_offsets, ids, offsets))
    new_w = weights.detach().clone()
    new_state = {k: v.clone() for k, v in (state or {}).items()}
    g = grad[touched]
    if optimizer == "sgd":
        new_w[touched] -= lr * g
    elif optimizer == "rowwise_adagrad":
        s = new_state["sum"]
        s[touched] += (g * g).mean(dim=1)
        new_w[touched] -= lr * g / (s[touched].sqrt() + eps)[:, None]
    elif optimizer == "adam":
        b1, b2 = betas
        m, v = new_state["m"], new_state["v"]
        m[touched] = b1 * m[touched] + (1 - b1) * g
        v[touched] = b2 * v[touched] + (1 - b2) * g * g
        m_hat = m[touched] / (1 - b1**step)
        v_hat = v[touched] / (1 - b2**step)
        new_w[touched] -= lr * m_hat / (v_hat.sqrt() + eps)
    else:
        raise ValueError(f"optimizer: unknown {optimizer!r}")
    return new_w, new_state


# ------------------------------------------------------------------ the plain-PyTorch user code
def split_tables(ids: torch.Tensor, offsets: torch.Tensor, num_tables: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The table-major jagged input cut into per-table (ids, offsets (B+1,)) pairs, ids as int64."""
    batch = (offsets.numel() - 1) // num_tables
    out = []
    for t in range(num_tables):
        start, end = int(offsets[t * batch]), int(offsets[(t + 1) * batch])
        out.append((ids[start:end].long(), offsets[t * batch : (t + 1) * batch + 1] - start))
    return out


class EmbeddingBagLoop(nn.Module):
    """The obvious user code: one nn.EmbeddingBag per table, outputs concatenated to (B, T*D).

    `tables` are (num_rows, D) tensors; each becomes its own nn.EmbeddingBag weight (a Parameter
    sharing their memory, so several providers can look at the same rows).
    """

    def __init__(self, tables: list[torch.Tensor], pooling: str = "sum", sparse: bool = True):
        super().__init__()
        self.bags = nn.ModuleList()
        for table in tables:
            bag = nn.EmbeddingBag(
                table.shape[0],
                table.shape[1],
                mode=pooling,
                sparse=sparse,
                include_last_offset=True,
                _weight=table,
                device=table.device,
            )
            self.bags.append(bag)

    def forward(
        self, per_table: list[tuple[torch.Tensor, torch.Tensor]], per_sample_weights: list[torch.Tensor] | None = None
    ) -> torch.Tensor:
        outs = []
        for t, (bag, (ids, offsets)) in enumerate(zip(self.bags, per_table)):
            psw = None if per_sample_weights is None else per_sample_weights[t]
            outs.append(bag(ids, offsets, per_sample_weights=psw))
        return torch.cat(outs, dim=1)


def concatenated_forward(
    weights: torch.Tensor, rows: torch.Tensor, bag_offsets: torch.Tensor, num_tables: int, pooling: str = "sum"
) -> torch.Tensor:
    """One F.embedding_bag over the stacked table, given precomputed global `rows` and offsets (T*B+1)."""
    batch = (bag_offsets.numel() - 1) // num_tables
    pooled = F.embedding_bag(rows, weights, bag_offsets, mode=pooling, include_last_offset=True)
    return pooled.view(num_tables, batch, -1).transpose(0, 1).reshape(batch, -1)


@torch.no_grad()
def sparse_rowwise_adagrad_(
    weight: torch.Tensor, state_sum: torch.Tensor, grad: torch.Tensor, lr: float, eps: float = 1e-8
) -> None:
    """Row-wise Adagrad from a sparse gradient, in plain PyTorch: coalesce (sums duplicates), then
    state[r] += mean(g_r^2); w[r] -= lr * g_r / (sqrt(state[r]) + eps)."""
    g = grad.coalesce()
    rows = g.indices()[0]
    vals = g.values()
    state_sum.index_add_(0, rows, vals.pow(2).mean(dim=1))
    weight.index_add_(0, rows, vals * (-lr / (state_sum[rows].sqrt() + eps))[:, None])
