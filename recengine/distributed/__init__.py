"""recengine.distributed: embedding tables sharded over torch.distributed (gloo on CPU; the NCCL/GPU path
is not built yet).

- `ShardingPlan` with `TableWise(rank)` / `RowWise()` per table: who owns which rows.
- `ShardedEmbeddingTables`: EmbeddingTables' constructor and forward over a process group; input and
  output distribution are the separate steps in `input_dist` and `output_dist`.
- `checkpoint`: per-rank safetensors shards plus a JSON manifest; loads on any number of ranks.
- `launch.run_local`: start W local processes on gloo over 127.0.0.1 (tests, benchmarks, one machine).
- `fanout.fan_out`: independent work (simulated sessions) split over processes, results in order.

System layer: it uses recengine.nn and recengine.ops; nothing below imports it.
"""

from recengine.distributed.plan import RowWise, Shard, ShardingPlan, TableWise
from recengine.distributed.sharded_tables import InputRejected, ShardedEmbeddingTables

__all__ = ["ShardingPlan", "TableWise", "RowWise", "Shard", "ShardedEmbeddingTables", "InputRejected"]
