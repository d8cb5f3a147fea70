"""ShardedEmbeddingTables: EmbeddingTables whose rows are spread over the ranks of a torch.distributed group.

    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))     # torchrun sets the rest
    specs = [TableSpec("item", 10_000_000, 64), TableSpec("genre", 19, 64)]
    plan = ShardingPlan(dist.get_world_size(), {"item": RowWise(), "genre": TableWise(0)})
    tables = ShardedEmbeddingTables(specs, pooling="sum", optimizer=RowwiseAdagrad(lr=0.05), plan=plan)
    pooled = tables(ids, offsets)      # this rank's own batch, the EmbeddingTables layout: (B_r, T*D)
    loss(pooled).backward()            # every rank: the owners update their rows in place

Each rank feeds its own batch. A forward is three steps: input distribution (each requester sends every
id to the rank owning its row: one all-to-all of counts, one of ids, one of per-sample weights if any),
the owners pool their shards with the fused `embedding_bag` op, output distribution (one all-to-all of
pooled rows back; row-wise tables' partial sums are added, mean pooling divides by the full bag length).
The backward sends each requester's output gradient to the owners (one all-to-all) and each owner
applies the fused optimizer to its shard in place: no dense gradient of a table exists on any rank.

Semantics: the update equals that of one EmbeddingTables fed the concatenation of every rank's batch
(rank 0's samples first) with the loss summed over ranks: a row's gradient is the sum of every rank's
contributions, applied once. Every rank must take part in every forward and backward (they are
collectives); ranks that disagree on the plan, on whether a forward trains, or on per-sample weights,
and a rank given a bad batch, make every rank raise rather than hang.

Rows are initialised from `seed` per block of rows of each table, so a seed gives the same tables on
any number of ranks (not the same as EmbeddingTables(seed=...): copy a full state in with
`load_full_state_dict` for that).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from recengine._native import empty_with_huge_pages
from recengine.distributed.comm import Communicator
from recengine.distributed.input_dist import (
    OwnerBatch,
    Requests,
    TableRouter,
    assemble_owner_batch,
    bucket_requests,
)
from recengine.distributed.output_dist import bag_scale, combine_pooled, grad_chunks, owner_chunks, owner_grad
from recengine.distributed.plan import Shard, ShardingPlan, as_plan
from recengine.nn.embedding_tables import TableSpec, check_table_args
from recengine.ops._checks import FLOAT_DTYPES, INDEX_DTYPES, check_tensor
from recengine.ops.embedding_bag import embedding_bag, embedding_bag_fused_update
from recengine.optim import SGD, Adam, RowwiseAdagrad

__all__ = ["ShardedEmbeddingTables", "InputRejected"]

#: rows per independently seeded initialisation block (keeps the init the same on any number of ranks)
INIT_BLOCK_ROWS = 1 << 16
_OK, _BAD_INPUT = 0, 1


class InputRejected(RuntimeError):
    """Raised on every rank when some rank's batch was invalid (that rank raises its own, precise error)."""


@dataclass
class _Lookup:
    """What a training forward keeps for its backward."""

    requests: Requests
    owner: OwnerBatch
    scale: Tensor | None
    has_psw: bool


class _ShardedLookupFn(torch.autograd.Function):
    """Forward: the distributed pooled lookup. Backward: gradients to the owners, fused update there, and
    the gradient of the per-sample weights back. `anchor` only makes the output require grad."""

    @staticmethod
    def forward(ctx, anchor, per_sample_weights, tables, ids, offsets):
        pooled, lookup = tables._lookup(ids, offsets, per_sample_weights, training=True)
        ctx.tables, ctx.lookup = tables, lookup
        return pooled

    @staticmethod
    def backward(ctx, grad_output):
        grad_psw = ctx.tables._backward(grad_output.contiguous(), ctx.lookup)
        return None, grad_psw, None, None, None


class ShardedEmbeddingTables(nn.Module):
    """T embedding tables of one dimension D, sharded over a process group by a `ShardingPlan`.

    Args:
        specs: the tables (unique names, one common dim), as for EmbeddingTables.
        pooling: "sum" or "mean".
        optimizer: recengine.optim.SGD / RowwiseAdagrad / Adam (fused update of the owned rows in the
            backward), or None for lookups only (the output then carries no gradient).
        process_group: the group to shard over; None: the default group, or a world of one process
            when torch.distributed is not initialised.
        plan: a ShardingPlan for this group's size; None: every table row-wise.
        device: where this rank's shards live. Only the CPU (gloo) is supported and tested so far: the
            routing tensors and messages are built on the CPU, which NCCL would refuse.
        seed: initialisation seed (uniform in [-1/sqrt(D), 1/sqrt(D)]); None uses torch's RNG.

    Buffers / state_dict hold this rank's shards only, stacked in shard order (`shards`): "weights"
    (R_q, D), and the optimizer state as in EmbeddingTables. `full_state_dict()` gathers the whole model
    in EmbeddingTables' format; recengine.distributed.checkpoint saves and re-shards.
    """

    def __init__(
        self,
        specs: Sequence[TableSpec],
        *,
        pooling: str = "sum",
        optimizer: SGD | RowwiseAdagrad | Adam | None = None,
        process_group=None,
        plan: ShardingPlan | None = None,
        device: torch.device | str | None = None,
        seed: int | None = None,
    ):
        super().__init__()
        specs = check_table_args(specs, pooling, optimizer, one_dim=True)
        self.specs = tuple(specs)
        self.pooling = pooling
        self.optimizer = optimizer
        self.dim = specs[0].dim
        self.comm = Communicator(process_group)
        self.plan = as_plan(plan, specs, self.comm.world_size)
        self.layout = self.plan.layout(specs)
        self._check_ranks_agree()
        self.rank = self.comm.rank
        self.shards: tuple[Shard, ...] = self.layout.shards_of(self.rank)
        self._router = TableRouter(self.layout)
        self._shard_tables = self.layout.shard_tables()
        self._rank_bounds = self.layout.rank_bounds()
        self._shard_names = tuple(f"{s.table}[{s.row_start}:{s.row_end}]" for s in self.shards)
        self.register_buffer("table_offsets", self.layout.local_table_offsets(self.rank).to(device), persistent=False)
        num_rows = sum(s.num_rows for s in self.shards)
        weights = empty_with_huge_pages((num_rows, self.dim), device=device)
        self._init_rows(weights, seed)
        self.register_buffer("weights", weights)
        if optimizer is not None:
            for name, shape in optimizer.state_shapes(num_rows, self.dim).items():
                self.register_buffer(name, empty_with_huge_pages(shape, device=device).zero_())
            if isinstance(optimizer, Adam):
                self.register_buffer("step", torch.zeros((), dtype=torch.int64, device=device))

    # ---------------------------------------------------------------------------- construction
    def _check_ranks_agree(self) -> None:
        mine = f"{self.layout.fingerprint()} {self.plan.describe()} pooling={self.pooling} dim={self.dim}"
        everyone = self.comm.all_gather_objects(mine)
        if len(set(everyone)) > 1:
            detail = "; ".join(f"rank {r}: {text.split(' ', 1)[1]}" for r, text in enumerate(everyone))
            raise ValueError(f"plan: the ranks disagree on the tables or their sharding ({detail})")

    @torch.no_grad()
    def _init_rows(self, weights: Tensor, seed: int | None) -> None:
        bound = 1.0 / math.sqrt(self.dim)
        start = 0
        for shard in self.shards:
            rows = weights[start : start + shard.num_rows]
            start += shard.num_rows
            if seed is None:
                rows.uniform_(-bound, bound)
                continue
            first, last = shard.row_start // INIT_BLOCK_ROWS, (shard.row_end - 1) // INIT_BLOCK_ROWS
            for block in range(first, last + 1):
                lo = max(block * INIT_BLOCK_ROWS, shard.row_start)
                hi = min((block + 1) * INIT_BLOCK_ROWS, shard.row_end)
                gen = torch.Generator().manual_seed(_block_seed(seed, shard.table_index, block))
                values = torch.empty(INIT_BLOCK_ROWS, self.dim).uniform_(-bound, bound, generator=gen)
                off = block * INIT_BLOCK_ROWS
                rows[lo - shard.row_start : hi - shard.row_start] = values[lo - off : hi - off].to(rows.device)

    # ------------------------------------------------------------------------------- accessors
    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.specs)

    @property
    def num_tables(self) -> int:
        return len(self.specs)

    @property
    def world_size(self) -> int:
        return self.comm.world_size

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, pooling={self.pooling!r}, optimizer={self.optimizer}, rank={self.rank}, "
            f"shards=({', '.join(self._shard_names)})"
        )

    # --------------------------------------------------------------------------------- forward
    def forward(self, ids: Tensor, offsets: Tensor, per_sample_weights: Tensor | None = None) -> Tensor:
        """This rank's pooled (B, T*D). ids local to their table; offsets (T*B+1,) int64, table-major."""
        if self.optimizer is None or not torch.is_grad_enabled():
            pooled, _ = self._lookup(ids, offsets, per_sample_weights, training=False)
            return pooled
        anchor = torch.empty(0, device=self.weights.device, requires_grad=True)
        return _ShardedLookupFn.apply(anchor, per_sample_weights, self, ids, offsets)

    def _check_input(self, ids, offsets, per_sample_weights) -> int:
        """Validate this rank's batch (as the embedding_bag op does, against the full tables); returns B."""
        check_tensor("ids", ids, dtypes=INDEX_DTYPES, ndim=1)
        check_tensor("offsets", offsets, dtypes=(torch.int64,), ndim=1)
        if per_sample_weights is not None:
            check_tensor("per_sample_weights", per_sample_weights, dtypes=FLOAT_DTYPES, shape=(ids.shape[0],))
        num_tables = self.num_tables
        if offsets.shape[0] < 1 or (offsets.shape[0] - 1) % num_tables:
            raise ValueError(f"offsets: expected length T*B+1 with T={num_tables} tables, got {offsets.shape[0]}")
        batch = (offsets.shape[0] - 1) // num_tables
        if int(offsets[0]) != 0 or int(offsets[-1]) != ids.shape[0]:
            raise ValueError(
                f"offsets: must run from 0 to len(ids) = {ids.shape[0]}, got {int(offsets[0])} .. {int(offsets[-1])}"
            )
        if bool((offsets[1:] < offsets[:-1]).any()):
            raise ValueError("offsets: must be nondecreasing")
        segments = offsets[::batch].tolist() if batch else [0] * (num_tables + 1)
        for t, spec in enumerate(self.specs):
            part = ids[segments[t] : segments[t + 1]]
            if part.numel() == 0:
                continue
            lo, hi = (int(v) for v in torch.aminmax(part))
            if lo < 0 or hi >= spec.num_rows:
                k = int(((part < 0) | (part >= spec.num_rows)).nonzero()[0, 0])
                raise IndexError(
                    f"ids[{segments[t] + k}] = {int(part[k])} is outside table {t} ({spec.name!r}), "
                    f"which has {spec.num_rows} rows"
                )
        return batch

    def _exchange_headers(
        self, error: Exception | None, requests: Requests | None, batch: int, has_psw: bool, training: bool
    ) -> tuple[list[int], list[int]]:
        """One small all-to-all: each rank's status, batch size and id count per owner, flags. Every rank
        raises here if any rank's batch was bad or the ranks disagree. Returns, per requester r, its batch
        size B_r and the number of ids it sends this rank."""
        world = self.world_size
        headers = []
        for q in range(world):
            count = 0 if requests is None else requests.ids_per_rank[q]
            status = _OK if error is None else _BAD_INPUT
            headers.append(torch.tensor([status, batch, count, int(has_psw), int(training)], dtype=torch.int64))
        received = [h.tolist() for h in self.comm.all_to_all(headers, [5] * world)]
        bad = [r for r, h in enumerate(received) if h[0] != _OK]
        if bad:
            messages = self.comm.all_gather_objects("" if error is None else f"{type(error).__name__}: {error}")
            if error is not None:
                raise error
            detail = "; ".join(f"rank {r}: {messages[r]}" for r in bad)
            raise InputRejected(
                f"ShardedEmbeddingTables: a rank's batch was rejected, so every rank abandons this lookup ({detail})"
            )
        for flag, what in (
            (3, "per_sample_weights (given on some ranks, not on others)"),
            (4, "training (some ranks run a training forward, others a no-grad one)"),
        ):
            if len({h[flag] for h in received}) > 1:
                raise ValueError(f"ShardedEmbeddingTables: the ranks disagree on {what}")
        return [h[1] for h in received], [h[2] for h in received]

    def _lookup(
        self, ids: Tensor, offsets: Tensor, per_sample_weights: Tensor | None, training: bool
    ) -> tuple[Tensor, _Lookup]:
        error, requests, batch = None, None, 0
        psw = None if per_sample_weights is None else per_sample_weights.detach()
        try:
            batch = self._check_input(ids, offsets, psw)
            requests = bucket_requests(self._router, ids, offsets, psw, batch)
        except (TypeError, ValueError, IndexError) as exc:
            error = exc
        batch_sizes, ids_from = self._exchange_headers(error, requests, batch, psw is not None, training)
        world, dim = self.world_size, self.dim
        num_local = len(self.shards)
        # input distribution: bag lengths and ids in one int64 message per owner, weights in a second
        payloads = [requests.payload(q) for q in range(world)]
        sent = self.comm.all_to_all(
            [torch.cat([lengths, ids_q]) for lengths, ids_q, _ in payloads],
            [b_r * num_local + n_r for b_r, n_r in zip(batch_sizes, ids_from)],
        )
        lengths = [m[: b_r * num_local] for m, b_r in zip(sent, batch_sizes)]
        received_ids = [m[b_r * num_local :] for m, b_r in zip(sent, batch_sizes)]
        received_psw = None
        if psw is not None:
            received_psw = self.comm.all_to_all([w for _, _, w in payloads], ids_from)
        owner = assemble_owner_batch(num_local, batch_sizes, lengths, received_ids, received_psw)
        # owners pool (sum; requesters scale for mean), then output distribution
        if num_local:
            pooled_local = embedding_bag(
                self.weights,
                self.table_offsets,
                owner.ids,
                owner.offsets,
                per_sample_weights=owner.per_sample_weights,
                pooling="sum",
                table_names=self._shard_names,
            )
        else:
            pooled_local = self.weights.new_zeros(sum(batch_sizes), 0)
        back = self.comm.all_to_all(
            owner_chunks(pooled_local, batch_sizes),
            [batch * (self._rank_bounds[q + 1] - self._rank_bounds[q]) * dim for q in range(world)],
        )
        scale = bag_scale(offsets, self.num_tables, batch, self.pooling)
        pooled = combine_pooled(back, self._shard_tables, self._rank_bounds, batch, self.num_tables, dim, scale)
        return pooled, _Lookup(requests, owner, scale, psw is not None)

    # -------------------------------------------------------------------------------- backward
    @torch.no_grad()
    def _backward(self, grad_output: Tensor, lookup: _Lookup) -> Tensor | None:
        owner, requests = lookup.owner, lookup.requests
        num_local, dim = len(self.shards), self.dim
        chunks = grad_chunks(grad_output, self._shard_tables, self._rank_bounds, self.num_tables, dim, lookup.scale)
        received = self.comm.all_to_all(chunks, [b_r * num_local * dim for b_r in owner.batch_sizes])
        grad_local = owner_grad(received, owner.batch_sizes, num_local, dim)
        grad_psw = None
        if lookup.has_psw:
            # from the rows as they were in the forward, so before the update
            local = (
                torch.ops.recengine.embedding_bag_psw_backward(
                    grad_local, self.weights, self.table_offsets, owner.ids, owner.offsets, "sum"
                )
                if num_local
                else grad_local.new_empty(0)
            )
            in_received_order = torch.empty_like(local)
            in_received_order[owner.order] = local
            back = self.comm.all_to_all(list(in_received_order.split(owner.ids_received)), requests.ids_per_rank)
            grad_psw = torch.empty(requests.order.shape[0], dtype=grad_output.dtype)
            grad_psw[requests.order] = torch.cat(back)
        self._fused_step(grad_local, owner)
        return grad_psw

    def _fused_step(self, grad_local: Tensor, owner: OwnerBatch) -> None:
        opt = self.optimizer
        step, eps, betas = 1, 1.0, (0.9, 0.999)
        if isinstance(opt, RowwiseAdagrad):
            eps = opt.eps
        elif isinstance(opt, Adam):
            self.step += 1
            step, eps, betas = int(self.step), opt.eps, opt.betas
        if not self.shards:
            return
        embedding_bag_fused_update(
            grad_local,
            self.weights,
            self.table_offsets,
            owner.ids,
            owner.offsets,
            owner.per_sample_weights,
            pooling="sum",
            optimizer=opt.kind,
            lr=float(opt.lr),
            eps=eps,
            betas=betas,
            state1=getattr(self, "momentum1", None),
            state2=getattr(self, "momentum2", None),
            step=step,
            check_values=False,
        )

    # ------------------------------------------------------------------------ whole-model state
    def _global_row_starts(self) -> list[int]:
        starts = [0]
        for s in self.specs:
            starts.append(starts[-1] + s.num_rows)
        return starts

    @torch.no_grad()
    def load_full_state_dict(self, state: dict[str, Tensor]) -> None:
        """Copy this rank's rows out of a whole-model state in EmbeddingTables' format (e.g. its state_dict())."""
        starts = self._global_row_starts()
        for name, local in self.local_state().items():
            if name not in state:
                raise KeyError(f"state: missing {name!r} (has {sorted(state)})")
            full = state[name]
            if name == "step":
                local.copy_(full)
                continue
            if full.shape[0] != starts[-1] or full.shape[1:] != local.shape[1:]:
                raise ValueError(
                    f"state[{name!r}]: expected {starts[-1]} rows of shape {tuple(local.shape[1:])}, "
                    f"got {tuple(full.shape)}"
                )
            at = 0
            for shard in self.shards:
                first = starts[shard.table_index] + shard.row_start
                local[at : at + shard.num_rows] = full[first : first + shard.num_rows].to(local.device)
                at += shard.num_rows

    def local_state(self) -> dict[str, Tensor]:
        """This rank's tensors by EmbeddingTables' state names: "weights" and the optimizer state it has."""
        names = ["weights", "momentum1", "momentum2", "step"]
        return {n: getattr(self, n) for n in names if hasattr(self, n)}

    @torch.no_grad()
    def full_state_dict(self) -> dict[str, Tensor]:
        """The whole model in EmbeddingTables' state_dict format, on every rank (a collective; it gathers
        every row, so it is for small tables, tests and export: checkpoints save shards instead)."""
        mine = {name: t.cpu() for name, t in self.local_state().items()}
        gathered = self.comm.all_gather_objects((self.shards, mine))
        starts = self._global_row_starts()
        full: dict[str, Tensor] = {}
        for name, local in mine.items():
            if name == "step":
                full[name] = local.clone()
                continue
            out = local.new_zeros((starts[-1], *local.shape[1:]))
            for shards, tensors in gathered:
                at = 0
                for shard in shards:
                    first = starts[shard.table_index] + shard.row_start
                    out[first : first + shard.num_rows] = tensors[name][at : at + shard.num_rows]
                    at += shard.num_rows
            full[name] = out
        return full


def _block_seed(seed: int, table_index: int, block: int) -> int:
    """The generator seed of one initialisation block: the same on every rank and in every process."""
    return ((seed * 1_000_003 + table_index) * 1_000_003 + block) % (1 << 63)
