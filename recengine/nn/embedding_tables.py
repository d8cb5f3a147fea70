"""EmbeddingTables: many embedding tables in one buffer, pooled in one call, trained with a fused update.

    specs = [TableSpec("user", 1000, 64), TableSpec("item", 5000, 64)]
    tables = EmbeddingTables(specs, pooling="sum", optimizer=recengine.optim.RowwiseAdagrad(lr=0.05))
    pooled = tables(ids, offsets)          # (B, T*D), table t in columns [t*D, (t+1)*D)
    loss(pooled).backward()                # updates the touched rows in place; no dense gradient

Input layout: see recengine.ops.embedding_bag (ids local to their table, offsets (T*B+1,) int64
table-major: the bag of sample b in table t is bag t*B + b).

With optimizer=None, `weights` is an ordinary nn.Parameter: the op's autograd gives its dense
gradient and any torch optimizer can train it. With an optimizer from recengine.optim, `weights` and
the optimizer state are buffers; the backward sums each touched row's gradient over the batch and
updates the row and its state in place (TBE-style), returning no gradient for the weights. The
update happens when backward reaches this module (once per backward of each forward call).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from recengine._native import empty_with_huge_pages
from recengine.ops.embedding_bag import POOLINGS, check_embedding_bag_inputs
from recengine.optim import SGD, Adam, RowwiseAdagrad

__all__ = ["TableSpec", "EmbeddingTables"]


@dataclass(frozen=True)
class TableSpec:
    """One table: a unique name, its number of rows and the embedding dimension."""

    name: str
    num_rows: int
    dim: int

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"TableSpec.name: expected a non-empty str, got {self.name!r}")
        for field_name in ("num_rows", "dim"):
            value = getattr(self, field_name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"TableSpec.{field_name}: expected an int, got {type(value).__name__}")
            if value < 1:
                raise ValueError(f"TableSpec.{field_name}: must be >= 1, got {value} (table {self.name!r})")


class _FusedLookup(torch.autograd.Function):
    """Forward: the pooled lookup. Backward: the fused optimizer update of the tables (in place) and,
    if asked, the gradient of the per-sample weights. `anchor` only makes the output require grad."""

    @staticmethod
    def forward(ctx, anchor, per_sample_weights, tables, ids, offsets):
        ctx.tables = tables
        ctx.save_for_backward(ids, offsets, per_sample_weights)
        return torch.ops.recengine.embedding_bag(tables.weights, tables.table_offsets, ids, offsets,
                                                 per_sample_weights, tables.pooling)

    @staticmethod
    def backward(ctx, grad_output):
        ids, offsets, per_sample_weights = ctx.saved_tensors
        tables = ctx.tables
        grad_output = grad_output.contiguous()
        grad_psw = None
        if per_sample_weights is not None and ctx.needs_input_grad[1]:
            # from the rows as they were in the forward, so before the update
            grad_psw = torch.ops.recengine.embedding_bag_psw_backward(
                grad_output, tables.weights, tables.table_offsets, ids, offsets, tables.pooling)
        tables._fused_step(grad_output, ids, offsets, per_sample_weights)
        return None, grad_psw, None, None, None


class EmbeddingTables(nn.Module):
    """T embedding tables of one dimension D, stacked in one (R, D) `weights`, pooled by one op call.

    Args:
        specs: the tables (unique names, one common dim).
        pooling: "sum" or "mean".
        optimizer: None (weights is an nn.Parameter with a dense gradient) or recengine.optim.SGD /
            RowwiseAdagrad / Adam (fused sparse update in the backward).
        device: where the weights live.
        seed: seed of the initialisation (uniform in [-1/sqrt(D), 1/sqrt(D)]); None uses torch's RNG.

    Buffers / state_dict: "weights" (R, D); for RowwiseAdagrad "momentum1" (R,); for Adam "momentum1",
    "momentum2" (R, D) and "step" (the global update count). `table_offsets` (T+1,) int64 is a
    non-persistent buffer (it follows from the specs).
    """

    def __init__(self, specs: Sequence[TableSpec], pooling: str = "sum",
                 optimizer: SGD | RowwiseAdagrad | Adam | None = None, *,
                 device: torch.device | str | None = None, seed: int | None = None):
        super().__init__()
        specs = list(specs)
        if not specs:
            raise ValueError("specs: need at least one TableSpec")
        for s in specs:
            if not isinstance(s, TableSpec):
                raise TypeError(f"specs: expected TableSpec items, got {type(s).__name__}")
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"specs: table names must be unique, got {names}")
        dims = {s.dim for s in specs}
        if len(dims) != 1:
            raise ValueError(f"specs: all tables must share one dim, got {[(s.name, s.dim) for s in specs]}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling: expected one of {POOLINGS}, got {pooling!r}")
        if optimizer is not None and not isinstance(optimizer, (SGD, RowwiseAdagrad, Adam)):
            raise TypeError(f"optimizer: expected None or recengine.optim.SGD/RowwiseAdagrad/Adam, "
                            f"got {type(optimizer).__name__}")
        self.specs = tuple(specs)
        self.pooling = pooling
        self.optimizer = optimizer
        self.dim = specs[0].dim
        self._names = tuple(names)
        self._index = {n: i for i, n in enumerate(names)}
        bounds = [0]
        for s in specs:
            bounds.append(bounds[-1] + s.num_rows)
        num_rows = bounds[-1]
        self.register_buffer("table_offsets", torch.tensor(bounds, dtype=torch.int64, device=device),
                             persistent=False)
        gen = None
        if seed is not None:
            gen = torch.Generator(device=device or "cpu").manual_seed(seed)
        weights = empty_with_huge_pages((num_rows, self.dim), device=device)
        bound = 1.0 / math.sqrt(self.dim)
        weights.uniform_(-bound, bound, generator=gen)
        if optimizer is None:
            self.weights = nn.Parameter(weights)
        else:
            self.register_buffer("weights", weights)
            for name, shape in optimizer.state_shapes(num_rows, self.dim).items():
                self.register_buffer(name, empty_with_huge_pages(shape, device=device).zero_())
            if isinstance(optimizer, Adam):
                self.register_buffer("step", torch.zeros((), dtype=torch.int64, device=device))

    # ------------------------------------------------------------------------------- accessors
    @property
    def names(self) -> tuple[str, ...]:
        return self._names

    @property
    def num_tables(self) -> int:
        return len(self.specs)

    def table(self, name: str) -> Tensor:
        """The (num_rows, D) rows of table `name` (a view of `weights`)."""
        if name not in self._index:
            raise KeyError(f"no table named {name!r}; tables: {list(self._names)}")
        t = self._index[name]
        start, end = sum(s.num_rows for s in self.specs[:t]), sum(s.num_rows for s in self.specs[:t + 1])
        return self.weights[start:end]

    def extra_repr(self) -> str:
        tables = ", ".join(f"{s.name}={s.num_rows}" for s in self.specs)
        return f"dim={self.dim}, pooling={self.pooling!r}, optimizer={self.optimizer}, tables=({tables})"

    # --------------------------------------------------------------------------------- forward
    def forward(self, ids: Tensor, offsets: Tensor, per_sample_weights: Tensor | None = None) -> Tensor:
        """Pooled (B, T*D). ids local to their table; offsets (T*B+1,) int64, table-major."""
        weights, table_offsets, ids, offsets, psw = check_embedding_bag_inputs(
            self.weights, self.table_offsets, ids, offsets, per_sample_weights, pooling=self.pooling,
            table_names=self._names, for_forward=True)
        if self.optimizer is None or not torch.is_grad_enabled():
            return torch.ops.recengine.embedding_bag(weights, table_offsets, ids, offsets, psw, self.pooling)
        anchor = torch.empty(0, device=weights.device, requires_grad=True)
        return _FusedLookup.apply(anchor, psw, self, ids, offsets)

    @torch.no_grad()
    def _fused_step(self, grad_output: Tensor, ids: Tensor, offsets: Tensor, per_sample_weights: Tensor | None):
        opt = self.optimizer
        empty = self.weights.new_empty(0)
        step, eps, (beta1, beta2) = 1, 1.0, (0.0, 0.0)
        if isinstance(opt, RowwiseAdagrad):
            eps = opt.eps
        elif isinstance(opt, Adam):
            self.step += 1
            step = int(self.step)
            eps, (beta1, beta2) = opt.eps, opt.betas
        state1 = getattr(self, "momentum1", empty)
        state2 = getattr(self, "momentum2", empty)
        psw = None if per_sample_weights is None else per_sample_weights.detach()
        torch.ops.recengine.embedding_bag_fused_update(grad_output, self.weights, self.table_offsets, ids, offsets,
                                                       psw, self.pooling, opt.kind, state1, state2, float(opt.lr),
                                                       float(eps), float(beta1), float(beta2), step)
