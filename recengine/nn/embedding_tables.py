"""EmbeddingTables: many embedding tables in one buffer, pooled in one call, trained with a fused update.

    specs = [TableSpec("user", 1000, 64), TableSpec("item", 5000, 64)]
    tables = EmbeddingTables(specs, pooling="sum", optimizer=recengine.optim.RowwiseAdagrad(lr=0.05))
    pooled = tables(ids, offsets)          # (B, T*D), table t in columns [t*D, (t+1)*D)
    pooled = tables(kjt)                   # the same from a TorchRec-style KeyedJaggedTensor, keys = table names
    loss(pooled).backward()                # updates the touched rows in place; no dense gradient

Input layout: see recengine.ops.embedding_bag (ids local to their table, offsets (T*B+1,) int64
table-major: the bag of sample b in table t is bag t*B + b); a KeyedJaggedTensor-like object is read by
recengine.nn.keyed_jagged.

Tables may have different dims: the tables of each distinct dim then live in a group of their own (a child
EmbeddingTables in `groups`, one buffer and one op call per dim), and the output is still every table's
pooled vector concatenated in spec order, (B, sum of dims).

torch.compile(fullgraph=True) and torch.export trace the module with every optimizer: the fused update is
part of the backward graph. With several dims the per-dim split of the batch has a data-dependent size, so
torch.compile needs `torch._dynamo.config.capture_dynamic_output_shape_ops = True` for it (the setting
TorchRec's jagged inputs need too); torch.export needs nothing.

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
from recengine.nn.keyed_jagged import from_keyed_jagged, is_keyed_jagged
from recengine.ops.embedding_bag import POOLINGS, check_embedding_bag_inputs
from recengine.ops.jagged import select_tables
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


def check_table_args(
    specs: Sequence[TableSpec], pooling: str, optimizer: object, *, one_dim: bool = False
) -> list[TableSpec]:
    """`specs` as a list, once checked with `pooling` and `optimizer`: what EmbeddingTables and
    ShardedEmbeddingTables (recengine.distributed) accept alike. At least one TableSpec, unique names (and one
    dim shared by every table when `one_dim`), pooling one of POOLINGS, optimizer None or one of recengine.optim's;
    ValueError / TypeError naming the argument."""
    specs = list(specs)
    if not specs:
        raise ValueError("specs: need at least one TableSpec")
    for s in specs:
        if not isinstance(s, TableSpec):
            raise TypeError(f"specs: expected TableSpec items, got {type(s).__name__}")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"specs: table names must be unique, got {names}")
    if one_dim and len({s.dim for s in specs}) != 1:
        raise ValueError(f"specs: all tables must share one dim, got {[(s.name, s.dim) for s in specs]}")
    if pooling not in POOLINGS:
        raise ValueError(f"pooling: expected one of {POOLINGS}, got {pooling!r}")
    if optimizer is not None and not isinstance(optimizer, (SGD, RowwiseAdagrad, Adam)):
        raise TypeError(
            f"optimizer: expected None or recengine.optim.SGD/RowwiseAdagrad/Adam, got {type(optimizer).__name__}"
        )
    return specs


class _FusedLookup(torch.autograd.Function):
    """Forward: the pooled lookup. Backward: the fused optimizer update of the tables (in place) and,
    if asked, the gradient of the per-sample weights. `anchor`, an empty tensor that requires grad, only
    makes the output require grad (the weights are buffers)."""

    @staticmethod
    def forward(ctx, anchor, per_sample_weights, tables, ids, offsets):
        ctx.tables = tables
        ctx.save_for_backward(ids, offsets, per_sample_weights)
        return torch.ops.recengine.embedding_bag(
            tables.weights, tables.table_offsets, ids, offsets, per_sample_weights, tables.pooling
        )

    @staticmethod
    def backward(ctx, grad_output):
        ids, offsets, per_sample_weights = ctx.saved_tensors
        tables = ctx.tables
        grad_output = grad_output.contiguous()
        grad_psw = None
        if per_sample_weights is not None and ctx.needs_input_grad[1]:
            # from the rows as they were in the forward, so before the update
            grad_psw = torch.ops.recengine.embedding_bag_psw_backward(
                grad_output, tables.weights, tables.table_offsets, ids, offsets, tables.pooling
            )
        tables._fused_step(grad_output, ids, offsets, per_sample_weights)
        return None, grad_psw, None, None, None


class EmbeddingTables(nn.Module):
    """T embedding tables stacked in one (R, D) `weights` per distinct dim D, pooled by one op call per dim.

    Args:
        specs: the tables (unique names; dims may differ).
        pooling: "sum" or "mean".
        optimizer: None (weights is an nn.Parameter with a dense gradient) or recengine.optim.SGD /
            RowwiseAdagrad / Adam (fused sparse update in the backward).
        device: where the weights live.
        seed: seed of the initialisation (uniform in [-1/sqrt(D), 1/sqrt(D)]); None uses torch's RNG. With
            several dims, the group of the g-th distinct dim (in order of first appearance) uses seed + g.

    Buffers / state_dict, when all tables share one dim D: "weights" (R, D); for RowwiseAdagrad "momentum1"
    (R,); for Adam "momentum1", "momentum2" (R, D) and "step" (the global update count). `table_offsets`
    (T+1,) int64 is a non-persistent buffer (it follows from the specs). With several dims, the same per
    group under "groups.<g>.", and `weights` / `dim` do not exist (use `table(name)` and `dims`).
    """

    def __init__(
        self,
        specs: Sequence[TableSpec],
        pooling: str = "sum",
        optimizer: SGD | RowwiseAdagrad | Adam | None = None,
        *,
        device: torch.device | str | None = None,
        seed: int | None = None,
    ):
        super().__init__()
        specs = check_table_args(specs, pooling, optimizer)
        self.specs = tuple(specs)
        self.pooling = pooling
        self.optimizer = optimizer
        self.dims = tuple(s.dim for s in specs)
        self.output_dim = sum(self.dims)
        self._names = tuple(s.name for s in specs)
        self._index = {n: i for i, n in enumerate(self._names)}
        # not a parameter or buffer (so not in state_dict or parameters()): see _FusedLookup
        self._anchor = torch.empty(0, requires_grad=True)
        distinct = list(dict.fromkeys(self.dims))
        if len(distinct) == 1:
            self.dim = distinct[0]
            self._init_storage(device, seed)
            return
        self._group_tables = tuple(tuple(t for t, d in enumerate(self.dims) if d == dim) for dim in distinct)
        self.groups = nn.ModuleList(
            EmbeddingTables(
                [specs[t] for t in tables], pooling, optimizer, device=device, seed=None if seed is None else seed + g
            )
            for g, tables in enumerate(self._group_tables)
        )
        # the groups' outputs side by side hold the tables in group order; this gathers them back to spec order
        starts, col = {}, 0
        for tables in self._group_tables:
            for t in tables:
                starts[t], col = col, col + self.dims[t]
        order = [starts[t] + c for t in range(len(specs)) for c in range(self.dims[t])]
        self.register_buffer("_columns", torch.tensor(order, dtype=torch.int64, device=device), persistent=False)

    def _init_storage(self, device: torch.device | str | None, seed: int | None) -> None:
        """The single-dim storage: weights, table_offsets and the optimizer state."""
        bounds = [0]
        for s in self.specs:
            bounds.append(bounds[-1] + s.num_rows)
        num_rows = bounds[-1]
        self.register_buffer("table_offsets", torch.tensor(bounds, dtype=torch.int64, device=device), persistent=False)
        gen = None
        if seed is not None:
            gen = torch.Generator(device=device or "cpu").manual_seed(seed)
        weights = empty_with_huge_pages((num_rows, self.dim), device=device)
        bound = 1.0 / math.sqrt(self.dim)
        weights.uniform_(-bound, bound, generator=gen)
        if self.optimizer is None:
            self.weights = nn.Parameter(weights)
            return
        self.register_buffer("weights", weights)
        for name, shape in self.optimizer.state_shapes(num_rows, self.dim).items():
            self.register_buffer(name, empty_with_huge_pages(shape, device=device).zero_())
        if isinstance(self.optimizer, Adam):
            self.register_buffer("step", torch.zeros((), dtype=torch.int64, device=device))

    # ------------------------------------------------------------------------------- accessors
    @property
    def names(self) -> tuple[str, ...]:
        return self._names

    @property
    def num_tables(self) -> int:
        return len(self.specs)

    def table(self, name: str) -> Tensor:
        """The (num_rows, dim) rows of table `name` (a view of the weights holding it)."""
        if name not in self._index:
            raise KeyError(f"no table named {name!r}; tables: {list(self._names)}")
        if hasattr(self, "groups"):
            dim = self.dims[self._index[name]]
            return next(g for g in self.groups if g.dim == dim).table(name)
        t = self._index[name]
        start, end = sum(s.num_rows for s in self.specs[:t]), sum(s.num_rows for s in self.specs[: t + 1])
        return self.weights[start:end]

    def extra_repr(self) -> str:
        tables = ", ".join(f"{s.name}={s.num_rows}x{s.dim}" for s in self.specs)
        return f"pooling={self.pooling!r}, optimizer={self.optimizer}, tables=({tables})"

    # --------------------------------------------------------------------------------- forward
    def forward(
        self, ids: Tensor | object, offsets: Tensor | None = None, per_sample_weights: Tensor | None = None
    ) -> Tensor:
        """Pooled (B, sum of dims), table t's vector after those of tables 0..t-1.

        Either `ids` (local to their table) with `offsets` (T*B+1,) int64, table-major, and optional
        `per_sample_weights`; or one KeyedJaggedTensor-like object whose keys name the tables (its weights,
        if any, are the per-sample weights).
        """
        if offsets is None and is_keyed_jagged(ids):
            if per_sample_weights is not None:
                raise ValueError("per_sample_weights: a KeyedJaggedTensor carries its own weights")
            ids, offsets, per_sample_weights = from_keyed_jagged(ids, self._names)
        elif offsets is None:
            raise TypeError("offsets: required unless the input is a KeyedJaggedTensor-like object")
        if hasattr(self, "groups"):
            return self._forward_groups(ids, offsets, per_sample_weights)
        weights, table_offsets, ids, offsets, psw = check_embedding_bag_inputs(
            self.weights,
            self.table_offsets,
            ids,
            offsets,
            per_sample_weights,
            pooling=self.pooling,
            table_names=self._names,
            for_forward=True,
        )
        if self.optimizer is None or not torch.is_grad_enabled():
            return torch.ops.recengine.embedding_bag(weights, table_offsets, ids, offsets, psw, self.pooling)
        return _FusedLookup.apply(self._anchor, psw, self, ids, offsets)

    def _forward_groups(self, ids: Tensor, offsets: Tensor, per_sample_weights: Tensor | None) -> Tensor:
        """Tables of several dims: each group pools its own tables, then the columns go back to spec order."""
        outs = []
        for group, tables in zip(self.groups, self._group_tables):
            g_ids, g_offsets, g_psw = select_tables(ids, offsets, tables, self.num_tables, per_sample_weights)
            outs.append(group(g_ids, g_offsets, g_psw))
        return torch.cat(outs, dim=1).index_select(1, self._columns)

    @torch.no_grad()
    def _fused_step(self, grad_output: Tensor, ids: Tensor, offsets: Tensor, per_sample_weights: Tensor | None):
        opt = self.optimizer
        empty = self.weights.new_empty(0)
        eps, (beta1, beta2) = 1.0, (0.0, 0.0)
        step = getattr(self, "step", None)
        if isinstance(opt, RowwiseAdagrad):
            eps = opt.eps
        elif isinstance(opt, Adam):
            step.add_(1)  # in place, so the counter stays a traced buffer under torch.compile
            eps, (beta1, beta2) = opt.eps, opt.betas
        if step is None:
            step = torch.ones((), dtype=torch.int64)
        state1 = getattr(self, "momentum1", empty)
        state2 = getattr(self, "momentum2", empty)
        psw = None if per_sample_weights is None else per_sample_weights.detach()
        torch.ops.recengine.embedding_bag_fused_update(
            grad_output,
            self.weights,
            self.table_offsets,
            ids,
            offsets,
            psw,
            self.pooling,
            opt.kind,
            state1,
            state2,
            float(opt.lr),
            float(eps),
            float(beta1),
            float(beta2),
            step,
        )
