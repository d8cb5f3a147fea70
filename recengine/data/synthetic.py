"""A seeded synthetic dataset with the MovieLens schema, so every test and demo runs without downloads.

Users and items get latent vectors; items' genres and release years follow their latent vector, users'
features (age, gender, occupation) follow theirs. Each user's history is generated step by step: the next item
is drawn (without repeats) from a softmax over

    user_weight * <u, v_i>  +  sequence_weight * <v_prev, v_i>  +  popularity_i

so the data has a long-term taste, a short-term sequential signal (what a sequence model can learn and a
popularity baseline cannot) and a popularity skew.
"""

from __future__ import annotations

import numpy as np

from .movielens import AGE_EDGES, NUM_YEAR_BUCKETS, MovieLens


def make_synthetic(
    num_users: int = 500,
    num_items: int = 300,
    *,
    min_len: int = 10,
    max_len: int = 60,
    latent_dim: int = 8,
    num_genres: int = 8,
    num_occupations: int = 10,
    user_weight: float = 2.0,
    sequence_weight: float = 4.0,
    popularity_skew: float = 1.0,
    seed: int = 0,
) -> MovieLens:
    """Generate a MovieLens-shaped dataset; the same arguments always give the same arrays.

    Returns a `MovieLens` with name "synthetic". Users have between `min_len` and `max_len` interactions
    (at most num_items). The true latent preferences are in ``extras["user_latent"]`` (U, latent_dim) and
    ``extras["item_latent"]`` (N, latent_dim, unit norm); features stay categorical ids as in MovieLens.
    """
    if num_users < 1 or num_items < 2:
        raise ValueError(f"need num_users >= 1 and num_items >= 2, got {num_users}, {num_items}")
    if not 1 <= min_len <= max_len:
        raise ValueError(f"need 1 <= min_len <= max_len, got {min_len}, {max_len}")
    rng = np.random.default_rng(seed)
    max_len = min(max_len, num_items)
    min_len = min(min_len, max_len)

    item_latent = rng.normal(size=(num_items, latent_dim))
    item_latent /= np.linalg.norm(item_latent, axis=1, keepdims=True)
    user_latent = rng.normal(size=(num_users, latent_dim)) / np.sqrt(latent_dim)
    popularity = popularity_skew * rng.normal(size=num_items)

    # genres: the 1-2 genre directions an item is closest to; year bucket: from one latent coordinate
    genre_dirs = rng.normal(size=(num_genres, latent_dim))
    affinity = item_latent @ genre_dirs.T
    order = np.argsort(-affinity, axis=1)
    two = rng.random(num_items) < 0.4
    genre_counts = np.where(two, 2, 1).astype(np.int64)
    genre_ids = np.concatenate([order[i, : genre_counts[i]] for i in range(num_items)]).astype(np.int64)
    genre_offsets = np.concatenate([[0], np.cumsum(genre_counts)]).astype(np.int64)
    rank = np.argsort(np.argsort(item_latent[:, 0]))
    year = (1 + rank * (NUM_YEAR_BUCKETS - 1) // num_items).astype(np.int64)

    lengths = rng.integers(min_len, max_len + 1, size=num_users)
    steps = int(lengths.max())
    seen = np.zeros((num_users, num_items), dtype=bool)
    taste = user_weight * (user_latent @ item_latent.T) + popularity  # (U, N)
    prev = None
    users, items, times = [], [], []
    clock = rng.integers(8.7e8, 8.9e8, size=num_users)
    for t in range(steps):
        active = np.flatnonzero(lengths > t)
        logits = taste[active].copy()
        if prev is not None:
            logits += sequence_weight * (item_latent[prev[active]] @ item_latent.T)
        logits[seen[active]] = -np.inf
        gumbel = -np.log(-np.log(rng.random(logits.shape)))
        choice = np.argmax(logits + gumbel, axis=1)
        seen[active, choice] = True
        clock[active] += rng.integers(1, 3600, size=active.shape[0])
        users.append(active)
        items.append(choice)
        times.append(clock[active].copy())
        if prev is None:
            prev = np.zeros(num_users, dtype=np.int64)
        prev[active] = choice
    user = np.concatenate(users).astype(np.int64)
    item = np.concatenate(items).astype(np.int64)
    timestamp = np.concatenate(times).astype(np.int64)
    # shuffle the rows: a loader must not rely on file order being chronological
    perm = rng.permutation(user.shape[0])
    user, item, timestamp = user[perm], item[perm], timestamp[perm]
    affinity_ui = np.einsum("ij,ij->i", user_latent[user], item_latent[item]) * user_weight
    rating = np.clip(np.round(3.5 + affinity_ui + 0.5 * rng.normal(size=user.shape[0])), 1, 5).astype(np.float32)

    ages = len(AGE_EDGES) + 1
    user_features = {
        "age": np.clip((user_latent[:, 0] * np.sqrt(latent_dim) + 3).astype(np.int64), 0, ages - 1),
        "gender": (user_latent[:, 1] > 0).astype(np.int64),
        "occupation": rng.integers(0, num_occupations, size=num_users).astype(np.int64),
    }
    return MovieLens(
        name="synthetic",
        user=user,
        item=item,
        rating=rating,
        timestamp=timestamp,
        num_users=num_users,
        num_items=num_items,
        user_features=user_features,
        user_feature_sizes={"age": ages, "gender": 2, "occupation": num_occupations},
        item_features={"year": year, "genre_offsets": genre_offsets, "genre_ids": genre_ids},
        item_feature_sizes={"year": NUM_YEAR_BUCKETS, "genre": num_genres},
        item_titles=[f"item {i}" for i in range(num_items)],
        genre_names=tuple(f"genre{g}" for g in range(num_genres)),
        raw_user_ids=np.arange(num_users, dtype=np.int64),
        raw_item_ids=np.arange(num_items, dtype=np.int64),
        extras={"user_latent": user_latent.astype(np.float32), "item_latent": item_latent.astype(np.float32)},
    )
