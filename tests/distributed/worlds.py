"""What the spawned ranks of the distributed tests run (module-level, so spawned processes can import it),
and the batches they share with the single-process reference.

A world runs a list of tasks in order and returns {task name: result}; one spawn serves many checks,
which keeps the suite fast on a 2-core CI machine. A task that raises returns the error's type and text
instead, so failure behaviour is asserted by the parent.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch

from recengine.distributed import RowWise, ShardedEmbeddingTables, ShardingPlan, TableWise
from recengine.distributed import checkpoint as sharded_checkpoint
from recengine.nn.embedding_tables import EmbeddingTables, TableSpec
from recengine.optim import SGD, Adam, RowwiseAdagrad

SPECS = (TableSpec("item", 40, 4), TableSpec("genre", 7, 4), TableSpec("tag", 2, 4))
GLOBAL_BATCH = 6  # divisible by 2 and 3 ranks
STEPS = 3
INIT_SEED = 11


def make_optimizer(name: str):
    return {"sgd": SGD(lr=0.1), "rowwise_adagrad": RowwiseAdagrad(lr=0.1), "adam": Adam(lr=0.05)}[name]


@dataclass(frozen=True)
class Scenario:
    """One training run: optimizer, plan kind, pooling, per-sample weights, and whether every id falls in
    rank 0's rows (row-wise) or every table sits on rank 0 (table-wise)."""

    optimizer: str
    plan: str  # "row_wise" | "table_wise" | "mixed"
    pooling: str = "sum"
    weighted: bool = False
    skewed: bool = False
    name: str = field(default="", compare=False)

    def label(self) -> str:
        return (
            self.name
            or f"{self.optimizer}-{self.plan}-{self.pooling}{'-weighted' if self.weighted else ''}"
            f"{'-skewed' if self.skewed else ''}"
        )


def make_plan(kind: str, world_size: int, skewed: bool) -> ShardingPlan:
    if kind == "row_wise":
        return ShardingPlan.row_wise(SPECS, world_size)
    if kind == "table_wise":
        if skewed:
            return ShardingPlan(world_size, {s.name: TableWise(0) for s in SPECS})
        return ShardingPlan.table_wise(SPECS, world_size)
    return ShardingPlan(world_size, {"item": RowWise(), "genre": TableWise(world_size - 1), "tag": RowWise()})


def global_bags(scenario: Scenario, step: int, world_size: int) -> list[list[torch.Tensor]]:
    """bags[t][b]: the ids of global sample b in table t (lengths 0..3, duplicates likely)."""
    g = torch.Generator().manual_seed(1000 * step + 7)
    bags = []
    for spec in SPECS:
        # skewed row-wise: only the rows of rank 0 (the first num_rows // world_size)
        high = max(1, spec.num_rows // world_size) if scenario.skewed and scenario.plan == "row_wise" else spec.num_rows
        bags.append(
            [
                torch.randint(0, high, (int(torch.randint(0, 4, (1,), generator=g)),), generator=g)
                for _ in range(GLOBAL_BATCH)
            ]
        )
    return bags


def batch_of(bags: list[list[torch.Tensor]], lo: int, hi: int, weighted: bool):
    """Table-major (ids, offsets, per_sample_weights) of global samples [lo, hi)."""
    chosen = [bag for table in bags for bag in table[lo:hi]]
    lengths = torch.tensor([b.numel() for b in chosen], dtype=torch.int64)
    offsets = torch.cat([torch.zeros(1, dtype=torch.int64), lengths.cumsum(0)])
    ids = torch.cat(chosen) if chosen else torch.empty(0, dtype=torch.int64)
    psw = None
    if weighted:
        psw = 0.5 + (ids.float() % 5) / 4  # a function of the id: the same on every rank and in the reference
        psw.requires_grad_(True)
    return ids, offsets, psw


def loss_of(pooled: torch.Tensor, lo: int) -> torch.Tensor:
    """A loss summed over samples whose weights depend on the global sample index (so ranks differ)."""
    rows = torch.arange(lo, lo + pooled.shape[0], dtype=torch.float32).unsqueeze(1)
    cols = torch.arange(pooled.shape[1], dtype=torch.float32)
    return (pooled.pow(2) * (1 + (rows + cols) % 3)).sum()


def reference_init(optimizer: str) -> dict[str, torch.Tensor]:
    """The initial state every run starts from (rows from INIT_SEED, optimizer state zero)."""
    return EmbeddingTables(SPECS, pooling="sum", optimizer=make_optimizer(optimizer), seed=INIT_SEED).state_dict()


def train_reference(scenario: Scenario, world_size: int):
    """The single-process truth: EmbeddingTables fed every global batch; final state and psw grads."""
    tables = EmbeddingTables(SPECS, pooling=scenario.pooling, optimizer=make_optimizer(scenario.optimizer))
    tables.load_state_dict(reference_init(scenario.optimizer))
    grads = []
    for step in range(STEPS):
        ids, offsets, psw = batch_of(global_bags(scenario, step, world_size), 0, GLOBAL_BATCH, scenario.weighted)
        loss_of(tables(ids, offsets, psw), 0).backward()
        grads.append(None if psw is None else psw.grad)
    return tables.state_dict(), grads


# ------------------------------------------------------------------------------------- rank tasks
def train_sharded(rank: int, world_size: int, scenario: Scenario):
    """This rank's part of the scenario: its slice of every global batch; returns the gathered full state
    (rank 0 only) and the psw gradients of every step for this rank's slice."""
    tables = ShardedEmbeddingTables(
        SPECS,
        pooling=scenario.pooling,
        optimizer=make_optimizer(scenario.optimizer),
        plan=make_plan(scenario.plan, world_size, scenario.skewed),
    )
    tables.load_full_state_dict(reference_init(scenario.optimizer))
    per_rank = GLOBAL_BATCH // world_size
    lo, hi = rank * per_rank, (rank + 1) * per_rank
    grads = []
    for step in range(STEPS):
        ids, offsets, psw = batch_of(global_bags(scenario, step, world_size), lo, hi, scenario.weighted)
        loss_of(tables(ids, offsets, psw), lo).backward()
        grads.append(None if psw is None else psw.grad)
    full = tables.full_state_dict()
    return {"state": full if rank == 0 else None, "psw_grads": grads, "bytes_sent": tables.comm.bytes_sent}


#: a W1-shaped batch small enough for the tests: every bag holds `bag` ids, spread evenly over the rows
TRAFFIC_CONFIG = dict(tables=2, rows=8, dim=4, batch=4, bag=4)


def traffic(rank: int, world_size: int, plan_kind: str) -> float:
    """Bytes this rank sends per train step on a batch whose ids split evenly over the ranks' rows."""
    cfg = TRAFFIC_CONFIG
    specs = [TableSpec(f"t{t}", cfg["rows"], cfg["dim"]) for t in range(cfg["tables"])]
    plan = (ShardingPlan.row_wise if plan_kind == "row-wise" else ShardingPlan.table_wise)(specs, world_size)
    tables = ShardedEmbeddingTables(specs, optimizer=SGD(lr=0.1), plan=plan, seed=0)
    n = cfg["tables"] * cfg["batch"] * cfg["bag"]
    ids = torch.arange(n) % cfg["rows"]
    offsets = torch.arange(cfg["tables"] * cfg["batch"] + 1) * cfg["bag"]
    tables(ids, offsets).sum().backward()
    return float(tables.comm.bytes_sent)


def bad_id_on_last_rank(rank: int, world_size: int):
    """The last rank asks for a row past its table; every rank must raise (not hang)."""
    tables = ShardedEmbeddingTables(SPECS, optimizer=SGD(lr=0.1), plan=ShardingPlan.row_wise(SPECS, world_size))
    ids = torch.tensor([1, 2, 0])
    if rank == world_size - 1:
        ids = torch.tensor([1, 2, 7])  # "tag" has 2 rows
    offsets = torch.tensor([0, 1, 2, 3])
    tables(ids, offsets).sum().backward()


def mismatched_plan(rank: int, world_size: int):
    """Rank 0 builds a row-wise plan, the others a table-wise one."""
    kind = ShardingPlan.row_wise if rank == 0 else ShardingPlan.table_wise
    ShardedEmbeddingTables(SPECS, optimizer=SGD(lr=0.1), plan=kind(SPECS, world_size))


def plan_for_other_world(rank: int, world_size: int):
    """Every rank builds a plan for one rank more than there are."""
    ShardedEmbeddingTables(SPECS, optimizer=SGD(lr=0.1), plan=ShardingPlan.row_wise(SPECS, world_size + 1))


def still_works_after_errors(rank: int, world_size: int):
    """After the failures above, the same world still trains (nothing was left half-done)."""
    tables = ShardedEmbeddingTables(SPECS, optimizer=SGD(lr=0.1), seed=3)
    ids, offsets, _ = batch_of(global_bags(Scenario("sgd", "row_wise"), 0, world_size), 0, 2, False)
    return float(tables(ids, offsets).detach().sum())


def save_trained(rank: int, world_size: int, directory: str, scenario: Scenario):
    """Train the scenario, save a sharded checkpoint to `directory`, return the gathered state (rank 0)."""
    tables = ShardedEmbeddingTables(
        SPECS,
        pooling=scenario.pooling,
        optimizer=make_optimizer(scenario.optimizer),
        plan=make_plan(scenario.plan, world_size, False),
    )
    tables.load_full_state_dict(reference_init(scenario.optimizer))
    per_rank = GLOBAL_BATCH // world_size
    for step in range(STEPS):
        ids, offsets, psw = batch_of(
            global_bags(scenario, step, world_size), rank * per_rank, (rank + 1) * per_rank, False
        )
        loss_of(tables(ids, offsets, psw), rank * per_rank).backward()
    sharded_checkpoint.save(tables, directory)
    full = tables.full_state_dict()
    return full if rank == 0 else None


def load_and_resave(rank: int, world_size: int, source: str, target: str, scenario: Scenario):
    """Load a checkpoint written by another number of ranks, return the gathered state, save it again."""
    tables = ShardedEmbeddingTables(
        SPECS,
        pooling=scenario.pooling,
        optimizer=make_optimizer(scenario.optimizer),
        plan=make_plan(scenario.plan, world_size, False),
        seed=99,
    )
    sharded_checkpoint.load(tables, source)
    full = tables.full_state_dict()
    sharded_checkpoint.save(tables, target)
    return full if rank == 0 else None


def die_during_second_save(rank: int, world_size: int, directory: str):
    """Save once; then save again, with the last rank dying right after writing half of its shard file."""
    tables = ShardedEmbeddingTables(SPECS, optimizer=RowwiseAdagrad(lr=0.1), seed=5)
    sharded_checkpoint.save(tables, directory)
    first = tables.full_state_dict()
    ids, offsets, _ = batch_of(global_bags(Scenario("rowwise_adagrad", "row_wise"), 0, world_size), 0, 2, False)
    tables(ids, offsets).sum().backward()
    if rank == world_size - 1:

        def half_written(tensors, filename, metadata=None):
            with open(filename, "wb") as f:
                f.write(b"\x00" * 16)
            os._exit(3)

        sharded_checkpoint.save_file = half_written
    try:
        sharded_checkpoint.save(tables, directory)
    except Exception as exc:  # noqa: BLE001 - the survivors report how the save ended for them
        return {"first": first if rank == 0 else None, "error": f"{type(exc).__name__}: {exc}"}
    return {"first": first if rank == 0 else None, "error": None}


TASKS = {
    f.__name__: f
    for f in (
        train_sharded,
        bad_id_on_last_rank,
        mismatched_plan,
        plan_for_other_world,
        still_works_after_errors,
        save_trained,
        traffic,
        load_and_resave,
        die_during_second_save,
    )
}


def run_tasks(rank: int, world_size: int, tasks: list[tuple[str, str, tuple]], out_dir: str) -> tuple[int, int]:
    """Run (key, task name, args) in order. After each task, `out_dir/rank-<r>.pt` holds {key: ("ok", value)
    or ("error", "Type: message")} so far (a rank that dies on purpose still leaves its earlier results).
    Returns (rank, world size) as this process saw them."""
    results = {}
    for key, name, args in tasks:
        try:
            results[key] = ("ok", TASKS[name](rank, world_size, *args))
        except Exception as exc:  # noqa: BLE001 - the parent asserts on the error
            results[key] = ("error", f"{type(exc).__name__}: {exc}")
        path = os.path.join(out_dir, f"rank-{rank}.pt")
        torch.save(results, path + ".tmp")
        os.replace(path + ".tmp", path)
    return rank, world_size


def read_results(out_dir: str, world_size: int) -> list[dict]:
    """What run_tasks left for each rank."""
    return [torch.load(os.path.join(out_dir, f"rank-{r}.pt"), weights_only=False) for r in range(world_size)]


def bags_slice(values: torch.Tensor, bags: list[list[torch.Tensor]], lo: int, hi: int) -> torch.Tensor:
    """From per-id `values` of the whole global batch (table-major), those of global samples [lo, hi)."""
    lengths = [b.numel() for table in bags for b in table]
    per_bag = list(values.split(lengths))
    batch = len(bags[0])
    chosen = [per_bag[t * batch + b] for t in range(len(bags)) for b in range(lo, hi)]
    return torch.cat(chosen) if chosen else values.new_empty(0)
