"""The sharding plan: which rank owns which rows of which table, and the shard layout derived from it.

A plan places every table either whole on one rank (`TableWise(rank)`) or split by rows over all ranks
(`RowWise()`: rank q owns the contiguous rows [N*q // W, N*(q+1) // W) of a table of N rows). The
layout turns a plan and the table specs into the list of shards every rank agrees on, ordered by
(owning rank, table order): the order of the shards on a rank is the order of the "local tables" in
that rank's stacked weight buffer, and the order in which requesters group the ids they send.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from recengine.nn.embedding_tables import TableSpec

__all__ = ["TableWise", "RowWise", "ShardingPlan", "Shard", "ShardLayout"]


@dataclass(frozen=True)
class TableWise:
    """The whole table lives on rank `rank`."""

    rank: int

    def __post_init__(self):
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 0:
            raise ValueError(f"TableWise.rank: expected an int >= 0, got {self.rank!r}")


@dataclass(frozen=True)
class RowWise:
    """The table's rows are split into W contiguous, near-equal ranges, range q on rank q."""


Placement = TableWise | RowWise


@dataclass(frozen=True)
class Shard:
    """Rows [row_start, row_end) of table `table` (index `table_index` in the specs), held by `rank`."""

    table: str
    table_index: int
    rank: int
    row_start: int
    row_end: int

    @property
    def num_rows(self) -> int:
        return self.row_end - self.row_start


@dataclass(frozen=True)
class ShardingPlan:
    """A placement per table name, for a world of `world_size` ranks.

    Build one with `ShardingPlan.row_wise(specs, world_size)`, `ShardingPlan.table_wise(specs, world_size)`
    (tables dealt round-robin) or explicitly: `ShardingPlan(2, {"item": RowWise(), "genre": TableWise(1)})`.
    """

    world_size: int
    placements: Mapping[str, Placement]

    def __post_init__(self):
        if isinstance(self.world_size, bool) or not isinstance(self.world_size, int) or self.world_size < 1:
            raise ValueError(f"world_size: expected an int >= 1, got {self.world_size!r}")
        placements = dict(self.placements)
        for name, placement in placements.items():
            if not isinstance(placement, (TableWise, RowWise)):
                raise TypeError(f"placements[{name!r}]: expected TableWise or RowWise, got {type(placement).__name__}")
            if isinstance(placement, TableWise) and placement.rank >= self.world_size:
                raise ValueError(
                    f"placements[{name!r}]: rank {placement.rank} is outside a world of {self.world_size} ranks"
                )
        object.__setattr__(self, "placements", placements)

    @classmethod
    def row_wise(cls, specs: Sequence[TableSpec], world_size: int) -> ShardingPlan:
        """Every table split by rows over all ranks."""
        return cls(world_size, {s.name: RowWise() for s in specs})

    @classmethod
    def table_wise(cls, specs: Sequence[TableSpec], world_size: int) -> ShardingPlan:
        """Table i whole on rank i % world_size."""
        return cls(world_size, {s.name: TableWise(i % world_size) for i, s in enumerate(specs)})

    def describe(self) -> str:
        """A canonical text of the plan (the same on every rank that built the same plan)."""
        parts = [
            f"{name}={p.rank if isinstance(p, TableWise) else 'row_wise'}"
            for name, p in sorted(self.placements.items())
        ]
        return f"world_size={self.world_size}; " + ", ".join(parts)

    def layout(self, specs: Sequence[TableSpec]) -> ShardLayout:
        """The shards of `specs` under this plan (every table of `specs` must be placed, and nothing else)."""
        names = [s.name for s in specs]
        missing = [n for n in names if n not in self.placements]
        extra = [n for n in self.placements if n not in names]
        if missing or extra:
            raise ValueError(f"plan: tables without a placement {missing}, placements of unknown tables {extra}")
        shards: list[Shard] = []
        for t, spec in enumerate(specs):
            placement = self.placements[spec.name]
            if isinstance(placement, TableWise):
                shards.append(Shard(spec.name, t, placement.rank, 0, spec.num_rows))
                continue
            for q in range(self.world_size):
                start, end = spec.num_rows * q // self.world_size, spec.num_rows * (q + 1) // self.world_size
                if end > start:  # a table with fewer rows than ranks leaves some ranks without a shard
                    shards.append(Shard(spec.name, t, q, start, end))
        shards.sort(key=lambda s: (s.rank, s.table_index))
        return ShardLayout(tuple(specs), self.world_size, tuple(shards))


@dataclass(frozen=True)
class ShardLayout:
    """Every shard of every table, ordered by (rank, table index): global shard g is `shards[g]`."""

    specs: tuple[TableSpec, ...]
    world_size: int
    shards: tuple[Shard, ...]

    def fingerprint(self) -> str:
        """A short digest of specs, world size and shards: equal on ranks that agree on the layout."""
        text = repr((tuple((s.name, s.num_rows, s.dim) for s in self.specs), self.world_size, self.shards))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def rank_bounds(self) -> list[int]:
        """(W+1,) list: the shards of rank q are shards[bounds[q]:bounds[q+1]]."""
        bounds = [0] * (self.world_size + 1)
        for s in self.shards:
            bounds[s.rank + 1] += 1
        for q in range(self.world_size):
            bounds[q + 1] += bounds[q]
        return bounds

    def shards_of(self, rank: int) -> tuple[Shard, ...]:
        return tuple(s for s in self.shards if s.rank == rank)

    def shard_tables(self) -> torch.Tensor:
        """(G,) int64: the table index of each global shard."""
        return torch.tensor([s.table_index for s in self.shards], dtype=torch.int64)

    def table_row_bounds(self, table_index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """For one table: (row starts of its shards in row order, their global shard indices), both int64."""
        found = sorted((s.row_start, g) for g, s in enumerate(self.shards) if s.table_index == table_index)
        starts = torch.tensor([r for r, _ in found], dtype=torch.int64)
        index = torch.tensor([g for _, g in found], dtype=torch.int64)
        return starts, index

    def local_table_offsets(self, rank: int) -> torch.Tensor:
        """(S_q+1,) int64: the row offsets of rank `rank`'s shards in its stacked weight buffer."""
        bounds = [0]
        for s in self.shards_of(rank):
            bounds.append(bounds[-1] + s.num_rows)
        return torch.tensor(bounds, dtype=torch.int64)


def as_plan(plan: ShardingPlan | None, specs: Sequence[TableSpec], world_size: int) -> ShardingPlan:
    """The plan to use: `plan`, or row-wise for every table when None; checks it was made for this world."""
    if plan is None:
        return ShardingPlan.row_wise(specs, world_size)
    if not isinstance(plan, ShardingPlan):
        raise TypeError(f"plan: expected a ShardingPlan or None, got {type(plan).__name__}")
    if plan.world_size != world_size:
        raise ValueError(f"plan: made for a world of {plan.world_size} ranks, but the process group has {world_size}")
    return plan
