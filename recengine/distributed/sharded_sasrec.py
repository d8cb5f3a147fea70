"""ShardedSASRec: the large model laid out for data-parallel training, dense parts replicated, tables sharded.

    group = dist.new_group(backend="gloo")                       # the tables' own group (apart from DDP's)
    sharded = ShardedSASRec(model_from_data(data, cfg), lr=cfg.lr, process_group=group)
    ddp = DistributedDataParallel(sharded, find_unused_parameters=True)   # the shards are marked ignored
    ddp(inputs, targets, users).backward()      # dense grads all-reduced by DDP; table rows updated by their owners
    state = sharded.full_state_dict()           # a collective: the plain SequenceRecommender's state_dict

Three tables are sharded row-wise over the ranks with ShardedEmbeddingTables (each its own fused Adam):
the item id table (`encoder.item_embedding`), the item side-feature tables and the user feature tables. The
plain model keeps those parameters as empty (0, D) placeholders, so no rank holds a whole table.

The item table is TIED to the catalog head, and the head's full-catalog softmax reads every item row for every
position: its gradient is dense over the catalog on every step. So each step gathers every table once (a
lookup of every row through the sharded tables: one all-to-all to the owners and one back), the plain model
runs on the gathered tensors (substituted for the placeholders with torch.func.functional_call), and the
backward sends each rank's gradient of the gathered rows to their owners, which sum the ranks' contributions
and apply the update once. Sharded logits (all-gather the states, a distributed softmax) would move the
states instead of the catalog; that pays once the catalog is much larger than a step's positions.

Gradient scale: DDP averages the dense gradients over the ranks; the owners sum theirs, so the gathered
tables' gradients are divided by the world size to match. Gradient clipping (by the trainer) sees the dense
parameters only: the tables are updated inside the backward.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.func import functional_call
from torch.nn.parallel import DistributedDataParallel

from recengine.distributed.sharded_tables import ShardedEmbeddingTables
from recengine.nn.embedding_tables import TableSpec
from recengine.nn.sequence_recommender import SequenceRecommender
from recengine.optim import Adam

__all__ = ["ShardedSASRec", "SHARDED_PARAMETERS"]

#: the plain model's state names whose tensors are sharded, and the name of each sharded table module
SHARDED_PARAMETERS = {
    "encoder.item_embedding": "item_ids",
    "encoder.item_tables.weights": "item_features",
    "encoder.user_tables.weights": "user_features",
}


class _Loss(nn.Module):
    """The plain model's training loss as a forward (what functional_call and DDP call)."""

    def __init__(self, model: SequenceRecommender):
        super().__init__()
        self.model = model

    def forward(self, inputs: Tensor, targets: Tensor, users: Tensor | None) -> Tensor:
        return self.model.loss(inputs, targets, users)


class ShardedSASRec(nn.Module):
    """A SequenceRecommender whose item, item-feature and user-feature tables are sharded over `process_group`.

    Args:
        model: the freshly built (or trained) plain model; its table parameters are copied into the shards
            and replaced by empty placeholders (the model is changed in place).
        lr: the tables' Adam learning rate (the dense AdamW's, without weight decay, as the plain trainer does).
        process_group: the group the tables shard over; give them a group of their own so their all-to-alls
            never interleave with DDP's all-reduces.
    """

    def __init__(self, model: SequenceRecommender, *, lr: float, process_group: dist.ProcessGroup | None = None):
        super().__init__()
        self.loss_module = _Loss(model)
        self.tables = nn.ModuleDict()
        self._dims: dict[str, int] = {}
        for state_name, table_name in SHARDED_PARAMETERS.items():
            owner_name, _, attr = ("loss_module.model." + state_name).rpartition(".")
            owner = self.get_submodule(owner_name) if self._has_module(owner_name) else None
            if owner is None or not isinstance(getattr(owner, attr, None), torch.Tensor):
                continue
            full = getattr(owner, attr).detach()
            specs = owner.specs if hasattr(owner, "specs") else [TableSpec("item", full.shape[0], full.shape[1])]
            tables = ShardedEmbeddingTables(
                specs, pooling="sum", optimizer=Adam(lr=lr), process_group=process_group, seed=0
            )
            state = {name: torch.zeros((full.shape[0], *t.shape[1:])) for name, t in tables.local_state().items()}
            state["weights"], state["step"] = full, torch.zeros((), dtype=torch.int64)
            tables.load_full_state_dict(state)
            setattr(owner, attr, nn.Parameter(full.new_empty(0, full.shape[1]), requires_grad=False))
            self.tables[table_name] = tables
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(
            self, [f"tables.{name}" for name, _ in self.tables.named_buffers()]
        )

    def _has_module(self, name: str) -> bool:
        try:
            return self.get_submodule(name) is not None
        except AttributeError:
            return False

    @property
    def model(self) -> SequenceRecommender:
        """The plain model (dense parameters; the sharded ones are empty placeholders)."""
        return self.loss_module.model

    @property
    def world_size(self) -> int:
        return next(iter(self.tables.values())).world_size

    def gathered_tables(self) -> dict[str, Tensor]:
        """Every sharded table in full, by its plain state name (a collective; the result carries gradients to
        the owners when the tables train)."""
        out = {}
        for state_name, table_name in SHARDED_PARAMETERS.items():
            if table_name not in self.tables:
                continue
            tables = self.tables[table_name]
            rows = [s.num_rows for s in tables.specs]
            batch = max(rows)
            ids = torch.cat([torch.arange(r, dtype=torch.int64) for r in rows])
            lengths = torch.zeros(len(rows), batch, dtype=torch.int64)  # table t: one id per bag, then empty bags
            for t, r in enumerate(rows):
                lengths[t, :r] = 1
            offsets = torch.cat([torch.zeros(1, dtype=torch.int64), lengths.view(-1).cumsum(0)])
            pooled = tables(ids, offsets)  # (batch, T*D): row i of table t in column block t
            dim = tables.dim
            full = torch.cat([pooled[:r, t * dim : (t + 1) * dim] for t, r in enumerate(rows)])
            if full.requires_grad and self.world_size > 1:
                full.register_hook(lambda grad, w=self.world_size: grad / w)
            out[state_name] = full
        return out

    def forward(self, inputs: Tensor, targets: Tensor, users: Tensor | None = None) -> Tensor:
        """This rank's mean next-item loss over its batch (as SequenceRecommender.loss), tables gathered."""
        gathered = {f"model.{k}": v for k, v in self.gathered_tables().items()}
        return functional_call(self.loss_module, gathered, (inputs, targets, users), strict=False)

    @torch.no_grad()
    def full_state_dict(self) -> dict[str, Tensor]:
        """The plain SequenceRecommender's state_dict with the whole tables in it (a collective)."""
        state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        for state_name, table_name in SHARDED_PARAMETERS.items():
            if table_name in self.tables:
                state[state_name] = self.tables[table_name].full_state_dict()["weights"]
        return state

    def local_shards(self) -> dict[str, Tensor]:
        """This rank's rows of each sharded table, by table name (clones)."""
        return {name: t.weights.detach().clone() for name, t in self.tables.items()}

    @torch.no_grad()
    def load_local_shards(self, shards: dict[str, Tensor]) -> None:
        """Put back rows saved by `local_shards` on this rank."""
        for name, rows in shards.items():
            self.tables[name].weights.copy_(rows)
