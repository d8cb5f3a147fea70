"""Train the large model on your own interaction log (a CSV of user, item, timestamp) and recommend from it.

    python examples/train_own_csv.py                                  # writes a small demo CSV first
    python examples/train_own_csv.py --csv my_events.csv --out runs/my-model --epochs 20

The command line does the same: ``recengine train sasrec --dataset my_events.csv --out runs/my-model``. The CSV
needs a header naming a user, an item and a time column (``user,item,timestamp``, ``user_id,item_id,timestamp``,
MovieLens's ``userId,movieId,rating,timestamp``, ...); ids may be any strings.
"""

from __future__ import annotations

import argparse
import csv
import os
import random

from recengine.data import histories_of, leave_one_out, load_local
from recengine.serving import Recommender
from recengine.train import SASRecConfig, train_sasrec


def write_demo_csv(path: str, users: int = 150, items: int = 60, seed: int = 0) -> str:
    """A log with structure to learn: each user walks through a neighbourhood of the catalog in order."""
    rng = random.Random(seed)
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["user_id", "item_id", "timestamp"])
        for u in range(users):
            start, t = rng.randrange(items), 1_700_000_000 + rng.randrange(10_000)
            for step in range(rng.randint(6, 15)):
                item = (start + step + rng.choice((0, 0, 1, 2))) % items
                out.writerow([f"user-{u}", f"sku-{item:03d}", t])
                t += rng.randint(30, 3000)
    return path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--csv", help="your log (default: a demo log written into --out)")
    p.add_argument("--out", default="runs/example-own-csv", help="where the model goes")
    p.add_argument("--epochs", type=int, default=10, help="training epochs")
    p.add_argument("--users", type=int, default=150, help="users of the demo log")
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    path = args.csv or write_demo_csv(os.path.join(args.out, "demo_events.csv"), users=args.users)

    data = load_local(path)  # the format comes from the path: .csv, .parquet, .txt, or an atomic directory
    split = leave_one_out(histories_of(data))  # each user's last item is the test, the one before it validation
    print(f"{path}: {data.num_users} users, {data.num_items} items, {data.num_interactions} interactions")
    cfg = SASRecConfig(dim=32, max_len=20, num_layers=1, max_epochs=args.epochs, patience=args.epochs, seed=0)
    result = train_sasrec(data, cfg, out_dir=args.out, split=split, progress=False, log=lambda *a: None)
    print("test (leave-one-out, full ranking):", ", ".join(f"{k} {v:.3f}" for k, v in result.test.items()))

    rec = Recommender.load(args.out)  # the model.safetensors just written, with your ids inside it
    history = ["sku-010", "sku-011", "sku-012"]
    answer = rec.recommend([history], k=5, ids="raw")  # your ids in and out
    print(f"after {history}: {answer.items[0]}")


if __name__ == "__main__":
    main()
