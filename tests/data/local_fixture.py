"""One small interaction log written in every format `--dataset PATH` reads (shared by the loader's tests and the
command line's): 40 users walking through 60 items in order, so a model has something to learn."""

from __future__ import annotations

import pathlib

FORMATS = ("atomic", "sequence", "parquet", "csv", "tsv")
USERS, ITEMS = 40, 60


def rows() -> list[tuple[str, str, int]]:
    """(user, item, timestamp) in file order; each user's rows in time order."""
    out = []
    for u in range(USERS):
        for step in range(6 + u % 5):
            out.append((f"u{u}", f"i{(3 * u + step) % ITEMS}", 1000 * u + step))
    return out


def write_log(directory: pathlib.Path, fmt: str) -> pathlib.Path:
    """The log in `fmt` under `directory`; returns the path to pass as --dataset."""
    data = rows()
    if fmt == "atomic":
        root = directory / "mylog"
        root.mkdir()
        lines = ["user_id:token\titem_id:token\ttimestamp:float"] + [f"{u}\t{i}\t{t}" for u, i, t in data]
        (root / "mylog.inter").write_text("\n".join(lines) + "\n")
        return root
    if fmt == "sequence":
        path = directory / "mylog.txt"
        path.write_text("".join(f"{u} {i}\n" for u, i, _ in data))
        return path
    if fmt in ("csv", "tsv"):
        sep = "," if fmt == "csv" else "\t"
        path = directory / f"mylog.{fmt}"
        path.write_text(sep.join(["user_id", "item_id", "timestamp"]) + "\n")
        with path.open("a") as f:
            f.writelines(sep.join([u, i, str(t)]) + "\n" for u, i, t in data)
        return path
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = directory / "mylog.parquet"
        users, items, times = zip(*data)
        pq.write_table(pa.table({"user": list(users), "item": list(items), "timestamp": list(times)}), path)
        return path
    raise ValueError(f"fmt: unknown {fmt!r}")
