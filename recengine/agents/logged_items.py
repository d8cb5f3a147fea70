"""What each user already consumed in the logged data, as an exclusion list the catalog ops take.

An agent sees the last L items of a user's history; a user with a longer history has consumed more. Any
recommender keeps the whole interaction log, and so may an agent: the items of each user's leave-one-out TRAIN
prefix (never a validation or test item) plus the visible history form the user's known consumed set, and a slate
holding one of them wastes a slot (a user does not rate a film twice).

    known = LoggedItems.from_split(split)
    offsets, ids = known.exclusion(obs)          # CSR over the batch: visible history ∪ the user's logged items
"""

from __future__ import annotations

import numpy as np
import torch

from recengine.agents.policy_base import histories
from recengine.data.exclusion import exclusion_csr

__all__ = ["LoggedItems"]


class LoggedItems:
    """Each user's logged items: a CSR over user ids (``offsets`` (U+1,), ``items``), both int64."""

    def __init__(self, offsets, items):
        self.offsets = torch.as_tensor(np.asarray(offsets), dtype=torch.int64).contiguous()
        self.items = torch.as_tensor(np.asarray(items), dtype=torch.int64).contiguous()
        if self.offsets.dim() != 1 or self.offsets.numel() < 2 or int(self.offsets[0]) != 0:
            raise ValueError("offsets: expected a CSR offset array (U+1,) starting at 0")
        if bool((self.offsets[1:] < self.offsets[:-1]).any()) or int(self.offsets[-1]) != self.items.numel():
            raise ValueError("offsets: must never decrease and end at len(items)")

    @classmethod
    def from_split(cls, split) -> LoggedItems:
        """The TRAIN prefix of every user of a leave-one-out split (recengine.data.LeaveOneOut)."""
        from recengine.data.sequences import gather_csr

        h = split.histories
        offsets, items = gather_csr(h.items, h.offsets[:-1], split.train_end)
        return cls(offsets, items)

    @property
    def num_users(self) -> int:
        return self.offsets.numel() - 1

    def exclusion(self, obs, hist: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(exclude_offsets (B+1,), exclude_ids) of the visible history of each row of `obs` and, when `obs` is
        the simulator's dict observation (it carries "user_id"), that user's logged items (duplicates allowed:
        the catalog ops count an item once). A bare history matrix gives the history alone."""
        hist = histories(obs) if hist is None else hist
        h_off, h_ids = exclusion_csr(hist)
        users = obs.get("user_id") if isinstance(obs, dict) else None
        if users is None:
            return h_off, h_ids
        users = torch.as_tensor(np.asarray(users), dtype=torch.int64).reshape(-1)
        if users.numel() != hist.shape[0]:
            raise ValueError(f"obs: {users.numel()} user ids for {hist.shape[0]} histories")
        if users.numel() and (int(users.min()) < 0 or int(users.max()) >= self.num_users):
            raise IndexError(f"obs: user ids outside [0, {self.num_users})")
        starts, ends = self.offsets[users], self.offsets[users + 1]
        counts = ends - starts
        # row b: its history items, then its logged items
        u_ids = _ranges(starts, counts, self.items)
        h_counts = h_off[1:] - h_off[:-1]
        total = h_counts + counts
        offsets = torch.zeros(hist.shape[0] + 1, dtype=torch.int64)
        offsets[1:] = total.cumsum(0)
        rows = torch.repeat_interleave(torch.arange(hist.shape[0]), total)
        pos_in_row = torch.arange(int(offsets[-1])) - offsets[:-1][rows]
        from_hist = pos_in_row < h_counts[rows]
        ids = torch.empty(int(offsets[-1]), dtype=torch.int64)
        ids[from_hist] = h_ids
        ids[~from_hist] = u_ids
        return offsets, ids


def _ranges(starts: torch.Tensor, counts: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """values[starts[b] : starts[b] + counts[b]] for every b, concatenated (no Python loop over rows)."""
    total = int(counts.sum())
    if total == 0:
        return values.new_zeros(0)
    rows = torch.repeat_interleave(torch.arange(counts.numel()), counts)
    first = torch.zeros(counts.numel(), dtype=torch.int64)
    first[1:] = counts.cumsum(0)[:-1]
    return values[starts[rows] + torch.arange(total) - first[rows]]
