"""drop_rare against a plain per-row recount, features and raw ids carried along."""

import numpy as np
import pytest

from recengine.data.filtering import drop_rare
from recengine.data.synthetic import make_synthetic


@pytest.mark.parametrize("min_item, min_user", [(0, 0), (1, 0), (5, 0), (20, 0), (5, 12)])
def test_drop_rare_matches_a_recount(min_item, min_user):
    data = make_synthetic(num_users=60, num_items=90, seed=3)
    out = drop_rare(data, min_item_count=min_item, min_user_count=min_user)
    item_counts = {i: int((data.item == i).sum()) for i in range(data.num_items)}
    keep = np.array([item_counts[i] >= min_item for i in data.item])
    user_counts = {u: int((data.user[keep] == u).sum()) for u in range(data.num_users)}
    keep &= np.array([user_counts[u] >= min_user for u in data.user])
    raw_items = data.raw_item_ids if data.raw_item_ids is not None else np.arange(data.num_items)
    raw_users = data.raw_user_ids if data.raw_user_ids is not None else np.arange(data.num_users)
    assert out.num_interactions == int(keep.sum())
    np.testing.assert_array_equal(out.raw_item_ids[out.item], raw_items[data.item[keep]])
    np.testing.assert_array_equal(out.raw_user_ids[out.user], raw_users[data.user[keep]])
    np.testing.assert_array_equal(out.timestamp, data.timestamp[keep])
    assert out.item.max() == out.num_items - 1 and out.user.max() == out.num_users - 1
    assert len(np.unique(out.item)) == out.num_items or min_item == 0
    if min_item:
        assert np.bincount(out.item).min() >= min_item
    # features follow their items and users
    kept = np.searchsorted(raw_items, out.raw_item_ids)
    np.testing.assert_array_equal(out.item_features["year"], data.item_features["year"][kept])
    g0, g1 = data.item_features["genre_offsets"], out.item_features["genre_offsets"]
    for new, old in enumerate(kept):
        new_genres = out.item_features["genre_ids"][g1[new] : g1[new + 1]]
        np.testing.assert_array_equal(new_genres, data.item_features["genre_ids"][g0[old] : g0[old + 1]])
    for name, values in out.user_features.items():
        np.testing.assert_array_equal(values, data.user_features[name][np.searchsorted(raw_users, out.raw_user_ids)])


def test_bad_minimum_is_named():
    data = make_synthetic(num_users=5, num_items=5, seed=0)
    with pytest.raises(ValueError, match="min_item_count"):
        drop_rare(data, min_item_count=-1)
    with pytest.raises(TypeError, match="min_user_count"):
        drop_rare(data, min_user_count=2.5)
