"""The one collective the sharded tables need: an all-to-all of variable-sized 1-D tensors.

Rank r sends `send[q]` to rank q and receives `recv_numels[q]` elements from each rank q, through one
`all_to_all_single` with split sizes (gloo implements it as alltoallv; NCCL too). A world of one (no
process group and torch.distributed not initialised) needs no transport: the tensors are handed back.
Every rank counts the bytes it sends and the seconds spent in the all-to-alls (which include waiting for
the slowest rank), so benchmarks can report communication volume and share per step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["Communicator"]


@dataclass
class Communicator:
    """A process group (None: the default group if initialised, else a world of one) and byte counters."""

    group: dist.ProcessGroup | None = None
    #: bytes this rank sent to other ranks, all-to-all calls and seconds spent in them, since the last reset
    bytes_sent: int = 0
    calls: int = 0
    seconds: float = 0.0
    _local: bool = field(init=False, default=False)

    def __post_init__(self):
        self._local = self.group is None and not (dist.is_available() and dist.is_initialized())

    @property
    def world_size(self) -> int:
        return 1 if self._local else dist.get_world_size(self.group)

    @property
    def rank(self) -> int:
        return 0 if self._local else dist.get_rank(self.group)

    def reset_counters(self) -> None:
        self.bytes_sent, self.calls, self.seconds = 0, 0, 0.0

    def all_to_all(self, send: list[Tensor], recv_numels: list[int]) -> list[Tensor]:
        """Send `send[q]` (1-D, one dtype) to rank q; return the W tensors received, `recv_numels[q]` from q."""
        world = self.world_size
        if len(send) != world or len(recv_numels) != world:
            raise ValueError(f"send/recv_numels: expected {world} entries, got {len(send)} and {len(recv_numels)}")
        if self._local:
            return [send[0]]
        dtype = send[0].dtype
        flat = torch.cat([t.reshape(-1).to(dtype) for t in send])
        out = flat.new_empty(sum(recv_numels))
        in_splits = [t.numel() for t in send]
        me = self.rank
        self.bytes_sent += (flat.numel() - in_splits[me]) * flat.element_size()
        self.calls += 1
        start = time.perf_counter()
        dist.all_to_all_single(out, flat, recv_numels, in_splits, group=self.group)
        self.seconds += time.perf_counter() - start
        return list(out.split(recv_numels))

    def all_gather_objects(self, obj: object) -> list:
        """Every rank's picklable `obj`, in rank order (plans to compare, error messages, small states)."""
        if self._local:
            return [obj]
        gathered: list = [None] * self.world_size
        dist.all_gather_object(gathered, obj, group=self.group)
        return gathered
