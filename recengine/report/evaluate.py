"""`recengine evaluate`: a trained large model, or the score ensemble of several, on a dataset's leave-one-out split.

The same protocol as `recengine train` (recengine.eval.offline): the validation and test targets, full-catalog
ranking, with the user's history excluded and with it ranked too. Every model must have been trained on the same
catalog as the dataset: each checkpoint's item vocabulary is compared with the dataset's raw item ids first.
metrics.json holds each model's figures and, for more than one model, their ensemble's
(recengine.nn.score_ensemble).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence

from recengine._atomic import write_text
from recengine.machine import describe_machine

METRICS = "metrics.json"
"""the file `evaluate_command` writes into its output directory"""


def _figures(model, split) -> dict:
    """Validation and test figures, the test target ranked with the history excluded and not (one encoding)."""
    from recengine.eval.offline import rank_states, user_states_for

    valid, test = user_states_for(model, split, "valid"), user_states_for(model, split, "test")
    return {
        "valid": rank_states(model, valid, split, "valid"),
        "test": rank_states(model, test, split, "test"),
        "test_with_history": rank_states(model, test, split, "test", exclude_seen=False),
    }


def load_members(paths: Sequence[str], data) -> list:
    """The large models at `paths` (model files, training checkpoints or run directories), each checked against
    `data`'s catalog: ValueError naming the file when its catalog size or item vocabulary differs."""
    from recengine.serving.loading import load_any

    raw = getattr(data, "raw_item_ids", None)
    models = []
    for path in paths:
        loaded = load_any(path)
        model, _ = loaded.model()
        if model.head.num_items != data.num_items:
            raise ValueError(
                f"{path}: scores a catalog of {model.head.num_items} items, {data.name} has {data.num_items}"
            )
        vocabulary = loaded.vocabulary(model.head.num_items)
        if vocabulary is not None and raw is not None and list(vocabulary.raw_ids) != list(raw):
            raise ValueError(f"{path}: its item vocabulary is not {data.name}'s (trained on other data?)")
        models.append(model.eval())
    return models


def evaluate_command(
    dataset: str,
    paths: Sequence[str],
    out_dir: str,
    *,
    data_root: str | None = None,
    min_item_count: int | None = None,
    log: Callable[..., None] = print,
) -> dict:
    """Evaluate the models at `paths` (and their ensemble, for more than one) on `dataset`; writes and returns
    metrics.json's content."""
    from recengine.data import histories_of, leave_one_out, load_dataset
    from recengine.nn.score_ensemble import ScoreEnsemble

    data = load_dataset(dataset, root=data_root, min_item_count=min_item_count)
    split = leave_one_out(histories_of(data))
    members = load_members(paths, data)
    metrics = {
        "dataset": data.name,
        "split": {"evaluated_users": int(len(split.eval_users)), "sha256": split.digest()},
        "models": [],
    }
    for path, model in zip(paths, members):
        metrics["models"].append({"path": os.fspath(path), **_figures(model, split)})
        log(_line(os.fspath(path), metrics["models"][-1]))
    if len(members) > 1:
        metrics["ensemble"] = _figures(ScoreEnsemble(members), split)
        log(_line("ensemble", metrics["ensemble"]))
    metrics["machine"] = describe_machine()
    metrics["files"] = [METRICS]
    write_text(os.path.join(out_dir, METRICS), json.dumps(metrics, indent=2))
    log(f"wrote {out_dir}/{METRICS}")
    return metrics


def _line(name: str, figures: dict) -> str:
    v, t, a = figures["valid"], figures["test"], figures["test_with_history"]
    return (
        f"{name}: valid ndcg@10 {v['ndcg@10']:.4f} hr@10 {v['hr@10']:.4f}; test ndcg@10 {t['ndcg@10']:.4f} "
        f"hr@10 {t['hr@10']:.4f} (history excluded), {a['ndcg@10']:.4f} / {a['hr@10']:.4f} (history ranked)"
    )
