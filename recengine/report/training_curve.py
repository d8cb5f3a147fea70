"""The large model's learning curve: training loss per epoch and validation NDCG@10 / HR@10 against wall time (the
cost a reader weighs), one PNG."""

from __future__ import annotations

import os

from recengine.eval.metrics import HR_AT_10, NDCG_AT_10


def plot_curve(history: list[dict], path: str, baselines: dict | None = None, title: str = "") -> None:
    """Loss per epoch and validation NDCG@10 / HR@10 against cumulative training wall time of `history`
    (TrainResult.history), the baselines' test NDCG@10 as dashed lines, written to `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(epochs, [h["loss"] for h in history], marker=".")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("train loss (full-catalog cross-entropy)")
    wall, total = [], 0.0
    for h in history:
        total += h.get("seconds", 0.0)
        wall.append(total / 60)
    ax2.plot(wall, [h["valid"][NDCG_AT_10] for h in history], marker=".", label="valid NDCG@10")
    ax2.plot(wall, [h["valid"][HR_AT_10] for h in history], marker=".", label="valid HR@10")
    for i, (name, m) in enumerate((baselines or {}).items()):
        ax2.axhline(m[NDCG_AT_10], linestyle="--", color=f"C{i + 2}", label=f"{name} test NDCG@10")
    ax2.set_xlabel("training wall time (minutes)")
    ax2.legend(fontsize=8)
    fig.suptitle(title or "SASRec training")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
