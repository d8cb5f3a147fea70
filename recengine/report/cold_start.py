"""`recengine coldstart`: the large model's accuracy on items it never saw in training, per item-feature variant.

Every variant trains the same model (same seed, same fixed epoch budget, early stopping on warm validation
NDCG@10) on the cold-start split (``recengine.data.cold_start``) and differs only in what an item's vector is
made of:

    ids     the learned id embedding only (a cold item: zero id vector, mean bias; it ranks by nothing it knows)
    genre   + genre and year-bucket tables (today's item features)
    tfidf   + genre, year and the TF-IDF bag of title words
    minilm  + genre, year and the projected frozen MiniLM embedding of the title (the [text] extra)

The feature variants train with item-id dropout (``SASRecConfig.id_dropout``, default ``DEFAULT_ID_DROPOUT``):
each training step zeroes the id vector of a random share of the items and scores them with the mean item bias,
so their genre / year / text part must rank them alone, as it must for a cold item at serving. Without it
training lets the id embedding carry everything, and the feature part of a cold item alone scores too low to reach
a top 10. The ids variant has no other part and trains without it.

coldstart.json holds HR@10 / NDCG@10 with 95% intervals per variant on cold events (every event on a cold item,
averaged per user: ``recengine.eval.cold_start``) and on warm ones (each user's test event when its item is warm),
and paired 95% intervals (per-user differences on the same events) of each text variant against genre and of
each feature variant against ids; coldstart.md is the same as tables.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace

import numpy as np

from recengine._atomic import write_text
from recengine.data.cold_start import DEFAULT_COLD_SHARE, cold_start_split
from recengine.eval.cold_start import paired_summary, per_user_metrics, summarize
from recengine.eval.metrics import HR_AT_10, NDCG_AT_10
from recengine.machine import describe_machine
from recengine.nn.text_encoder import TextEncoder, minilm_available
from recengine.report.writer import write_json
from recengine.train.config import SASRecConfig
from recengine.train.sasrec import train_sasrec

VARIANTS: dict[str, dict] = {
    "ids": {"item_features": False, "item_text": "none"},
    "genre": {"item_features": True, "item_text": "none"},
    "tfidf": {"item_features": True, "item_text": "tfidf"},
    "minilm": {"item_features": True, "item_text": "minilm"},
}
"""the SASRecConfig settings of each variant"""
DEFAULT_ID_DROPOUT = 0.25
"""the item-id dropout of the feature variants (genre, tfidf, minilm) unless the caller gives another"""
BASELINE = "genre"
"""the variant the text variants are compared with (every feature variant is also compared with ids)"""
METRICS = (HR_AT_10, NDCG_AT_10)


def default_variants() -> list[str]:
    """ids, genre, tfidf, and minilm when the [text] extra is installed."""
    return [v for v in VARIANTS if v != "minilm" or minilm_available()]


def run_cold_start(
    data,
    out_dir: str,
    *,
    variants: Sequence[str] | None = None,
    base: SASRecConfig | None = None,
    share: float = DEFAULT_COLD_SHARE,
    seed: int = 0,
    text_encoder: TextEncoder | None = None,
    id_dropout: float = DEFAULT_ID_DROPOUT,
    progress: bool = False,
    log: Callable[..., None] = print,
) -> dict:
    """Train every variant on the cold-start split of `data` and write coldstart.json / coldstart.md to
    `out_dir`; returns the results. `base` gives the shared settings (its seed, epochs, sizes; no wall-clock
    budget is applied unless it sets one); `id_dropout` is the item-id dropout of the feature variants (the
    ids variant trains without); `text_encoder` replaces MiniLM (tests)."""
    variants = list(variants) if variants is not None else default_variants()
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        raise ValueError(f"variants: expected a non-empty subset of {list(VARIANTS)}, got {variants}")
    base = base or SASRecConfig(max_seconds=math.inf)
    replace(base, id_dropout=id_dropout)  # checked (ValueError naming id_dropout) before any training
    split = cold_start_split(data, share, seed)
    per_user, results = (
        {},
        {
            "dataset": getattr(data, "name", ""),
            "share": share,
            "seed": seed,
            "id_dropout": float(id_dropout),
            "config": asdict(base),
            "cold_items": int(split.cold_items.size),
            "events": _event_counts(split),
            "variants": {},
            "paired": {},
        },
    )
    os.makedirs(out_dir, exist_ok=True)
    for name in variants:
        cfg = replace(base, **VARIANTS[name], id_dropout=0.0 if name == "ids" else id_dropout)
        log(f"cold start: training variant {name!r}")
        trained = train_sasrec(
            data,
            cfg,
            split=split.train,
            progress=progress,
            log=lambda *a, **k: None,
            text_encoder=text_encoder,
            cold_items=split.cold_items,
        )
        per_user[name] = per_user_metrics(trained.model, split)
        results["variants"][name] = {
            **summarize(per_user[name], METRICS),
            "id_dropout": cfg.id_dropout,
            "best_epoch": trained.best_epoch,
            "epochs": len(trained.history),
            "train_seconds": trained.train_seconds,
        }
        results["paired"] = _pairs(per_user)
        _write(out_dir, results)  # after every variant, so a long run that is stopped keeps what it finished
    return results


def _event_counts(split) -> dict:
    """How many cold events (and their users) and warm test events are evaluated."""
    cold_users, _ = split.cold_events
    warm = int(split.eval_users.size - split.cold_target[split.eval_users].sum())
    return {"cold": int(cold_users.size), "cold_users": int(np.unique(cold_users).size), "warm": warm}


def _pairs(per_user: dict) -> dict:
    """Paired differences of every trained variant against the baseline (what the text adds), and of every
    feature variant against ids (what the features and their id dropout cost or buy on warm items)."""
    pairs = [(v, BASELINE) for v in per_user if v not in (BASELINE, "ids")]
    if "ids" in per_user:
        pairs += [(v, "ids") for v in per_user if v != "ids"]
    return {
        f"{a} - {b}": paired_summary(per_user[a], per_user[b], METRICS)
        for a, b in pairs
        if a in per_user and b in per_user
    }


def _write(out_dir: str, results: dict) -> None:
    results["machine"] = describe_machine()
    results["files"] = ["coldstart.json", "coldstart.md"]
    write_json(os.path.join(out_dir, "coldstart.json"), results)
    write_text(os.path.join(out_dir, "coldstart.md"), markdown(results))


def _ci(d: dict | None, signed: bool = False) -> str:
    if d is None:
        return "–"
    pattern = "{:+.4f} [{:+.4f}, {:+.4f}]" if signed else "{:.4f} [{:.4f}, {:.4f}]"
    return pattern.format(d["mean"], d["ci_low"], d["ci_high"])


def summary(results: dict) -> list[str]:
    """The five lines coldstart.md opens with: what was hidden, what was trained, the best variant on cold and on
    warm items, and what the features add over ids alone on the cold items."""
    variants = results["variants"]

    def best(group: str) -> str:
        scored = {n: v[group][NDCG_AT_10] for n, v in variants.items() if v.get(group, {}).get(NDCG_AT_10)}
        if not scored:
            return "–"
        name = max(scored, key=lambda n: scored[n]["mean"])
        return f"{name}, NDCG@10 {_ci(scored[name])}"

    pairs = {k: p for k, p in results.get("paired", {}).items() if k.endswith(" - ids")}
    gains = "; ".join(f"{k} {_ci(p['cold'][NDCG_AT_10], True)}" for k, p in pairs.items() if p.get("cold"))
    return [
        f"- Hidden: {results['cold_items']} items ({results['share']:.0%}), {results['events']['cold']} events on "
        f"them from {results['events']['cold_users']} users, never seen in training.",
        f"- Trained: {', '.join(variants) or 'no variant'} (the same model, seed and epoch budget).",
        f"- Best on the cold items: {best('cold')}.",
        f"- Best on warm items: {best('warm')}.",
        f"- Cold NDCG@10 over ids alone, paired per user: {gains or '–'}.",
    ]


def markdown(results: dict) -> str:
    """The cold-start results: a five-line summary, then Markdown tables (means with 95% intervals)."""
    lines = [
        f"# Cold-start evaluation ({results['dataset']})",
        "",
        *summary(results),
        "",
        f"{results['cold_items']} cold items ({results['share']:.0%} of the items with an event, seed "
        f"{results['seed']}) hidden from training. Cold: every event on a cold item ({results['events']['cold']} "
        f"events of {results['events']['cold_users']} users), averaged per user; warm: the "
        f"{results['events']['warm']} last events whose item is warm. Each ranked over the whole catalog from the "
        f"user's history before it. The feature variants train with item-id dropout "
        f"{results.get('id_dropout', 0.0):g}. Means over users with 95% intervals.",
        "",
        "| variant | cold HR@10 | cold NDCG@10 | warm HR@10 | warm NDCG@10 | best epoch | epochs | train s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, v in results["variants"].items():
        cells = [_ci(v[g][m]) for g in ("cold", "warm") for m in METRICS]
        epochs = f"{v['best_epoch']} | {v.get('epochs', '–')} | {v['train_seconds']:.0f}"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {epochs} |")
    if results["paired"]:
        lines += [
            "",
            "Paired differences (per-user, same test events), 95% intervals:",
            "",
            "| pair | cold HR@10 | cold NDCG@10 | warm HR@10 | warm NDCG@10 |",
            "|---|---|---|---|---|",
        ]
        for pair, p in results["paired"].items():
            cells = [_ci(p[g][m], True) for g in ("cold", "warm") for m in METRICS]
            lines.append(f"| {pair} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
