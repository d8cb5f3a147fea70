"""Dropping rare items and users, as benchmark protocols prepare a dataset before splitting it.

The SASRec / BERT4Rec papers prepare ML-1M by dropping the items with fewer than 5 ratings (6,040 users, 3,416
items, 999,611 interactions remain). ``drop_rare`` does that in one pass (items first, then users), keeps the
interactions in file order and renumbers what remains contiguously, carrying every feature and raw id along.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from recengine.data.dataset import MovieLens
from recengine.ops._checks import check_int

__all__ = ["drop_rare"]


def drop_rare(data: MovieLens, *, min_item_count: int = 5, min_user_count: int = 0) -> MovieLens:
    """`data` without the items that have fewer than `min_item_count` interactions, then without the users left
    with fewer than `min_user_count` (one pass, not an iterated k-core); ids renumbered 0..n-1 in their old order.
    Items and users with no interaction at all are dropped whenever the minimum is >= 1."""
    check_int("min_item_count", min_item_count, minimum=0)
    check_int("min_user_count", min_user_count, minimum=0)
    keep = np.bincount(data.item, minlength=data.num_items)[data.item] >= min_item_count
    user_counts = np.bincount(data.user[keep], minlength=data.num_users)
    keep &= user_counts[data.user] >= min_user_count
    kept_items = np.bincount(data.item, weights=keep, minlength=data.num_items) > 0
    kept_users = np.bincount(data.user, weights=keep, minlength=data.num_users) > 0
    if min_item_count == 0:
        kept_items[:] = True
    if min_user_count == 0 and min_item_count == 0:
        kept_users[:] = True
    item_map = np.cumsum(kept_items) - 1
    user_map = np.cumsum(kept_users) - 1
    item_rows = np.flatnonzero(kept_items)

    item_features = dict(data.item_features)
    if "year" in item_features:
        item_features["year"] = item_features["year"][item_rows]
    if "genre_offsets" in item_features:
        offsets, ids = item_features["genre_offsets"], item_features["genre_ids"]
        counts = np.diff(offsets)[item_rows]
        item_features["genre_offsets"] = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        item_features["genre_ids"] = (
            np.concatenate([ids[offsets[i] : offsets[i + 1]] for i in item_rows]).astype(np.int64)
            if len(item_rows)
            else np.zeros(0, np.int64)
        )
    return dataclasses.replace(
        data,
        user=user_map[data.user[keep]].astype(np.int64),
        item=item_map[data.item[keep]].astype(np.int64),
        rating=data.rating[keep],
        timestamp=data.timestamp[keep],
        num_users=int(kept_users.sum()),
        num_items=int(kept_items.sum()),
        user_features={k: v[kept_users] for k, v in data.user_features.items()},
        item_features=item_features,
        item_titles=[data.item_titles[i] for i in item_rows] if data.item_titles else [],
        raw_user_ids=None if data.raw_user_ids is None else data.raw_user_ids[kept_users],
        raw_item_ids=None if data.raw_item_ids is None else data.raw_item_ids[kept_items],
        extras={},
    )
