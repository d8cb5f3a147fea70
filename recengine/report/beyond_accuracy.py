"""Beyond-accuracy metrics in `recengine compare`: what each agent recommends, not only how often it is clicked.

For every agent two sets of lists are measured with `recengine.eval.beyond_accuracy`:

* offline: its top-k list (k = the slate size) for every test user of the leave-one-out split (who has k items
  left unseen), from the user's whole history before the test item (those items excluded, as for HR@K / NDCG@K),
  asked of the agent's own
  policy (`policy.act(..., explore=False)`), so every agent is measured the same way; the lists' own HR@k /
  NDCG@k per user are kept too, so accuracy and diversity are read from the same lists, with intervals;
* simulator: the slates of its greedy evaluation sessions (each slot's first session, as the return per
  session), collected through the evaluation loop's `on_step` hook by `GreedySlates`.

Intra-list diversity is measured in three descriptions of the items: their multi-hot genres, the simulator's item
vectors, and the TF-IDF vectors of their title words (the large model's "tfidf" text features; only when the data
has titles).

Per-list values are averaged per test user (offline) or per simulated session (simulator) and get the normal
interval over those units; catalog coverage gets a bootstrap interval over the same units (a session's slates
are resampled together). Several training seeds pool their units; coverage is then the mean over seeds, its
bootstrap resamples averaged over seeds. This module writes results.json's per-agent ``beyond_accuracy`` object,
the report's "Beyond accuracy" section and the plot of accuracy against diversity.
"""

from __future__ import annotations

import contextlib
import math
import os

import numpy as np
import torch

from recengine._atomic import atomic_path
from recengine.data.item_text import item_tfidf_bags
from recengine.eval.beyond_accuracy import (
    SparseVectors,
    catalog_coverage,
    coverage_interval,
    coverage_resamples,
    genre_vectors,
    group_means,
    intra_list_diversity,
    novelty,
    popularity_bias,
    summarize,
)
from recengine.eval.metrics import metric_key
from recengine.padding import PAD_ID

PLOT_FILE = "accuracy_vs_diversity.png"
"""the plot of accuracy against intra-list diversity, one point per agent, beside report.md"""

POPULAR_SHARE = 0.1
"""popularity bias: the share of recommended items among this top share of items by TRAIN count"""

NUM_RESAMPLES = 1000
"""bootstrap resamples of the coverage intervals"""

DEFINITIONS = (
    "coverage: share of the catalog recommended at least once (interval: ± z · its bootstrap standard error, "
    "resampling users / sessions); "
    "diversity (genre): 1 − mean pairwise cosine similarity of the items' multi-hot genre vectors within a list "
    "(an item without genre counts as unlike every other); diversity (embedding): the same with the simulator's "
    "item vectors; diversity (text): the same with the items' TF-IDF vectors of their title words (words in at "
    "least two titles, the release year left out; an item with no such word counts as unlike every other); "
    "novelty: mean self-information −log2 p(i) in bits of the recommended items, p from the TRAIN "
    "interaction counts with add-one smoothing (an item unseen in training gets the largest finite value); "
    f"popularity bias: share of recommended items among the top {POPULAR_SHARE:.0%} most popular items by TRAIN "
    "count. A list of one item has no pair, so its diversity is undefined and left out of the mean. Intervals: "
    "normal over per-user (offline) or per-session (simulator) means; padding slots are ignored."
)

LIST_METRICS = ("diversity_genre", "diversity_embedding", "diversity_text", "novelty", "popularity_bias")
"""the per-list metrics, in report order (coverage comes first, separately)"""

TITLES = {
    "coverage": "coverage",
    "diversity_genre": "diversity (genre)",
    "diversity_embedding": "diversity (embedding)",
    "diversity_text": "diversity (text)",
    "novelty": "novelty (bits)",
    "popularity_bias": f"popularity bias (top {POPULAR_SHARE:.0%})",
}


# ----------------------------------------------------------------------------------------- collecting
class GreedySlates:
    """An `on_step` hook of `recengine.agents.loop.evaluate`: keeps the slates of each slot's first session.

    It reads `step.slates` (B, k) and `step.done` (B,) of every vectorised step in order, from the reset on, and
    follows the loop's own rule: a slot's slates count until its first session ends."""

    def __init__(self, num_envs: int):
        if num_envs < 1:
            raise ValueError(f"num_envs: need at least one simulated user, got {num_envs}")
        self.alive = np.ones(num_envs, dtype=bool)
        self._slates: list[np.ndarray] = []
        self._sessions: list[np.ndarray] = []

    def __call__(self, step) -> None:
        slates = np.asarray(step.slates.cpu() if torch.is_tensor(step.slates) else step.slates)
        done = np.asarray(step.done.cpu() if torch.is_tensor(step.done) else step.done, dtype=bool)
        if slates.ndim != 2 or slates.shape[0] != self.alive.size or done.shape != self.alive.shape:
            raise ValueError(
                f"step: expected slates ({self.alive.size}, k) and done ({self.alive.size},), "
                f"got {slates.shape} and {done.shape}"
            )
        live = np.flatnonzero(self.alive)
        self._slates.append(slates[live].astype(np.int64))
        self._sessions.append(live)
        self.alive &= ~done

    def lists(self) -> tuple[np.ndarray, np.ndarray]:
        """(slates (R, k) int64, session (R,) int64: the slot whose first session showed each slate)."""
        if not self._slates:
            return np.zeros((0, 0), dtype=np.int64), np.zeros(0, dtype=np.int64)
        return np.concatenate(self._slates), np.concatenate(self._sessions)


def histories_before_test(split) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(users (U,), histories (U, L) right-aligned with PAD_ID on the left: each test user's whole history before
    the test item, targets (U,)) of the leave-one-out split's evaluated users."""
    users = split.eval_users
    h = split.histories
    starts, ends = h.offsets[users], split.prefix_end("test")[users]
    lengths = ends - starts
    width = max(int(lengths.max()) if users.size else 0, 1)
    cols = np.arange(width) - (width - lengths)[:, None]  # position in the user's prefix, < 0 for padding
    take = np.clip(starts[:, None] + cols, 0, max(h.items.size - 1, 0))
    hist = np.where(cols >= 0, h.items[take] if h.items.size else PAD_ID, PAD_ID).astype(np.int64)
    return users, hist, split.target("test")[users]


@contextlib.contextmanager
def _generator_kept(policy):
    """Restores the policy's own torch.Generator afterwards (a random policy's later draws stay as they were)."""
    generator = getattr(policy, "generator", None)
    state = generator.get_state() if isinstance(generator, torch.Generator) else None
    try:
        yield
    finally:
        if state is not None:
            generator.set_state(state)


@torch.no_grad()
def offline_lists(policy, split, k: int, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """(lists (U', k), targets (U',)): the policy's greedy list of `k` items (its slate size) for every test user
    from the history before the test item (observations as the simulator's: {"history", "user_id"}); users with
    fewer than k items left unseen get no list (no policy can fill one) and are left out."""
    users, hist, targets = histories_before_test(split)
    n = split.histories.num_items
    seen = np.zeros((len(users), n), dtype=bool)
    rows, cols = np.nonzero(hist != PAD_ID)
    seen[rows, hist[rows, cols]] = True
    keep = (n - seen.sum(1)) >= k
    users, hist, targets = users[keep], hist[keep], targets[keep]
    out = []
    with _generator_kept(policy):
        for b0 in range(0, len(users), batch_size):
            obs = {"history": hist[b0 : b0 + batch_size], "user_id": users[b0 : b0 + batch_size]}
            out.append(np.asarray(policy.act(obs, explore=False).cpu(), dtype=np.int64))
    return (np.concatenate(out) if out else np.zeros((0, k), dtype=np.int64)), targets


# ------------------------------------------------------------------------------------------ measuring
def text_vectors(data) -> SparseVectors | None:
    """The items' TF-IDF title vectors (``recengine.data.item_text``, the large model's "tfidf" features) as
    sparse (N, V) vectors, or None when the data has no title for every item. Sparse, because a title has a few
    of the V words: measuring a list costs its items' words, not k · V."""
    titles = getattr(data, "item_titles", None)
    num_items = getattr(data, "num_items", None)
    if not titles or num_items is None or len(titles) != num_items:
        return None
    bags = item_tfidf_bags(data)
    return SparseVectors(bags.offsets, bags.ids, bags.weights, len(bags.vocabulary))


def item_spaces(data, item_vectors) -> dict[str, np.ndarray | SparseVectors]:
    """The item descriptions diversity is measured in: "genre" (multi-hot, when the data has genres),
    "embedding" (`item_vectors`, the simulator's) and "text" (TF-IDF title vectors, when the data has titles)."""
    spaces = {}
    features = getattr(data, "item_features", {}) or {}
    if "genre_offsets" in features and "genre" in (getattr(data, "item_feature_sizes", {}) or {}):
        spaces["genre"] = genre_vectors(
            features["genre_offsets"], features["genre_ids"], int(data.item_feature_sizes["genre"])
        )
    vectors = item_vectors.detach().cpu().numpy() if torch.is_tensor(item_vectors) else np.asarray(item_vectors)
    spaces["embedding"] = vectors
    text = text_vectors(data)
    if text is not None:
        spaces["text"] = text
    return spaces


def measure(lists, groups, *, num_items: int, train_counts, spaces: dict, seed: int = 0) -> dict:
    """One set of lists measured: {"per_unit": {metric: (G,) per-group means}, "coverage", "coverage_resamples",
    "lists", "k"}; `groups` (R,) gives each list's unit (test user or simulated session)."""
    lists = np.asarray(lists, dtype=np.int64)
    per_list = {f"diversity_{name}": intra_list_diversity(lists, vectors) for name, vectors in spaces.items()}
    per_list["novelty"] = novelty(lists, train_counts)
    per_list["popularity_bias"] = popularity_bias(lists, train_counts, POPULAR_SHARE)
    return {
        "per_unit": {key: group_means(values, groups) for key, values in per_list.items()},
        "coverage": catalog_coverage(lists, num_items),
        "coverage_resamples": coverage_resamples(
            lists, num_items, groups=groups, num_resamples=NUM_RESAMPLES, seed=seed
        ),
        "lists": int(lists.shape[0]),
        "k": int(lists.shape[1]),
    }


def _accuracy_per_user(lists: np.ndarray, targets: np.ndarray) -> dict[str, np.ndarray]:
    """HR@k and NDCG@k of each user's list (one held-out target each)."""
    from recengine.eval.metrics import target_ranks

    k = lists.shape[1]
    ranks = target_ranks(torch.from_numpy(lists), torch.from_numpy(np.asarray(targets, dtype=np.int64))).numpy()
    hit = ranks < k
    return {
        metric_key("hr", k): hit.astype(np.float64),
        metric_key("ndcg", k): np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0),
    }


def measure_agent(policy, setup, item_vectors, slates: GreedySlates, *, offline: bool, seed: int) -> dict:
    """The raw measurements of one agent for one training seed: {"simulator": measure(...)} and, when `offline`,
    {"offline": measure(...) with the lists' HR@k / NDCG@k per user}; kept in its row until the seeds are pooled
    (add_beyond_accuracy)."""
    counts, n = setup.item_counts, setup.num_items
    spaces = item_spaces(setup.data, item_vectors)
    sim_lists, sessions = slates.lists()
    out = {"simulator": measure(sim_lists, sessions, num_items=n, train_counts=counts, spaces=spaces, seed=seed)}
    if offline:
        lists, targets = offline_lists(policy, setup.split, setup.slate_size)
        m = measure(lists, np.arange(len(lists)), num_items=n, train_counts=counts, spaces=spaces, seed=seed)
        m["per_unit"].update(_accuracy_per_user(lists, targets))
        out["offline"] = m
    return out


def row_fields(raw: dict) -> dict:
    """What an agent's row takes from its raw measurements: the raw ones (pooled later) and the table's
    coverage and diversity (one definition of each: the simulator's slates, see eval.beyond_accuracy)."""
    sim = raw["simulator"]
    diversity = summarize(sim["per_unit"]["diversity_embedding"])["mean"]
    return {"beyond_accuracy": raw, "coverage": sim["coverage"], "diversity": diversity}


# -------------------------------------------------------------------------------------------- pooling
def pool(raws: list[dict], level: float = 0.95) -> dict:
    """The JSON object of one agent over its training seeds' raw measurements: for "offline" and "simulator",
    every metric as {"value", "ci95"} with "stderr" and "n" (units) for the normal intervals, "resamples" for
    coverage's bootstrap one (with its "stderr"); "unit", "k", "lists"."""
    out = {}
    for where, unit in (("offline", "test user"), ("simulator", "session")):
        sets = [r[where] for r in raws if where in r]
        if not sets:
            continue
        value = float(np.mean([s["coverage"] for s in sets]))
        resamples = np.mean([s["coverage_resamples"] for s in sets], axis=0)
        ci = coverage_interval(value, resamples, level)
        block = {"unit": unit, "k": sets[0]["k"], "lists": int(sum(s["lists"] for s in sets))}
        block["coverage"] = {
            "value": value,
            "ci95": [ci["ci_low"], ci["ci_high"]],
            "stderr": ci["stderr"],
            "resamples": ci["n"],
        }
        for key in sets[0]["per_unit"]:
            s = summarize(np.concatenate([x["per_unit"][key] for x in sets]), level)
            ci95 = [s["ci_low"], s["ci_high"]]
            block[key] = {"value": s["mean"], "stderr": s["stderr"], "ci95": ci95, "n": s["n"]}
        out[where] = block
    return out


def add_beyond_accuracy(agents: dict, per_seed: dict, level: float = 0.95) -> None:
    """entry["beyond_accuracy"] for every agent whose rows carry raw measurements (moved out of the rows)."""
    for name, rows in per_seed.items():
        raws = [row.pop("beyond_accuracy") for row in rows if "beyond_accuracy" in row]
        if raws and name in agents:
            agents[name]["beyond_accuracy"] = pool(raws, level)


# ------------------------------------------------------------------------------------------- the report
def _cell(m: dict | None, pattern: str = "{:.3f}") -> str:
    if not m or m.get("value") is None or not math.isfinite(m["value"]):
        return "–"
    lo, hi = m["ci95"]
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return pattern.format(m["value"])
    return f"{pattern.format(m['value'])} [{pattern.format(lo)}, {pattern.format(hi)}]"


def section(results: dict) -> list[str]:
    """report.md's "Beyond accuracy" section (no lines when no agent was measured)."""
    agents = {n: e["beyond_accuracy"] for n, e in results["agents"].items() if e.get("beyond_accuracy")}
    if not agents:
        return []
    level = results.get("meta", {}).get("ci_level", 0.95)
    seeds = results.get("meta", {}).get("seeds", 1)
    lines = ["## Beyond accuracy", ""]
    for where, title in (
        ("offline", "Offline: each agent's top-{k} list for each of the {n} test users of the leave-one-out split"),
        ("simulator", "In the simulator: the slates of the greedy evaluation sessions"),
    ):
        rows = {n: a[where] for n, a in agents.items() if where in a}
        if not rows:
            continue
        k, lists = next(iter(rows.values()))["k"], next(iter(rows.values()))["lists"]
        keys = ["coverage"] + [m for m in LIST_METRICS if any(m in r for r in rows.values())]
        accuracy = [metric_key("hr", k), metric_key("ndcg", k)] if where == "offline" else []
        heads = [TITLES[m] for m in keys] + [a.upper() for a in accuracy]
        lines += [
            title.format(k=k, n=lists // max(seeds, 1)) + f" (value [{level:.0%} interval]):",
            "",
            "| agent | " + " | ".join(heads) + " |",
            "|---|" + "---:|" * len(heads),
        ]
        for name, r in rows.items():
            lines.append(f"| {name} | " + " | ".join(_cell(r.get(m)) for m in keys + accuracy) + " |")
        lines.append("")
    lines += [DEFINITIONS, ""]
    plot = (results.get("beyond_accuracy") or {}).get("plot")
    if plot:
        lines += [f"![{plot}]({plot})", ""]
    return lines


def _diversity_key(block: dict) -> str:
    return "diversity_genre" if "diversity_genre" in block else "diversity_embedding"


def write_plot(out: str, results: dict) -> bool:
    """accuracy_vs_diversity.png in `out`: return per session (simulator) and NDCG@k of the offline lists
    against intra-list diversity (by genre when the data has genres), one labelled point per agent with its
    intervals as error bars; records its name in results["beyond_accuracy"]["plot"]. False when nothing to plot."""
    agents = {n: e for n, e in results["agents"].items() if e.get("beyond_accuracy")}
    panels = []
    sim = {n: e for n, e in agents.items() if "simulator" in e["beyond_accuracy"] and e.get("return_ci95")}
    if sim:
        panels.append(("simulator", "return per session (simulator)", sim))
    off = {n: e for n, e in agents.items() if "offline" in e["beyond_accuracy"]}
    if off:
        panels.append(("offline", "NDCG@{k} of the top-{k} lists (offline)", off))
    if not panels:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.4), squeeze=False)
    for ax, (where, ylabel, entries) in zip(axes[0], panels):
        k = next(iter(entries.values()))["beyond_accuracy"][where]["k"]
        xkey = _diversity_key(next(iter(entries.values()))["beyond_accuracy"][where])
        for i, (name, e) in enumerate(entries.items()):
            block = e["beyond_accuracy"][where]
            x = block.get(xkey) or {}
            if where == "simulator":
                y, (ylo, yhi) = e["avg_return"], e["return_ci95"]
            else:
                yb = block.get(metric_key("ndcg", k)) or {}
                y, (ylo, yhi) = yb.get("value"), yb.get("ci95", [None, None])
            if x.get("value") is None or y is None or not math.isfinite(x["value"]):
                continue
            xlo, xhi = (v if v is not None and math.isfinite(v) else x["value"] for v in x["ci95"])
            ylo, yhi = (v if v is not None and math.isfinite(v) else y for v in (ylo, yhi))
            ax.errorbar(
                x["value"],
                y,
                xerr=[[x["value"] - xlo], [xhi - x["value"]]],
                yerr=[[y - ylo], [yhi - y]],
                fmt="o",
                ms=5,
                capsize=3,
            )
            ax.annotate(name, (x["value"], y), textcoords="offset points", xytext=(5, 4 - 15 * (i % 2)), fontsize=8)
        ax.set_xlabel(f"intra-list diversity ({'genre' if xkey == 'diversity_genre' else 'embedding'})")
        ax.set_ylabel(ylabel.format(k=k))
        ax.grid(alpha=0.3)
    fig.suptitle(f"Accuracy against diversity ({results.get('meta', {}).get('ci_level', 0.95):.0%} intervals)")
    fig.tight_layout()
    with atomic_path(os.path.join(out, PLOT_FILE)) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    results.setdefault("beyond_accuracy", {})["plot"] = PLOT_FILE
    return True


def summary() -> dict:
    """results.json's top-level "beyond_accuracy": the definitions and settings the per-agent objects follow."""
    return {
        "definitions": DEFINITIONS,
        "popular_share": POPULAR_SHARE,
        "coverage_resamples": NUM_RESAMPLES,
        "plot": None,
    }
