"""Writes what `recengine compare` measured: results.json, report.md and the PNG learning curves."""

from __future__ import annotations

import json
import math

from recengine._atomic import write_text
from recengine.eval.metrics import HR_AT_10, NDCG_AT_10
from recengine.machine import REPRODUCIBILITY, machine_summary
from recengine.report import beyond_accuracy, headroom
from recengine.report.pooling import PAIRED_BASELINES
from recengine.report.summary import is_smoke, opening

COLUMNS = [
    ("avg_return", "return / session", "{:.3f}"),
    ("ctr", "CTR", "{:.3f}"),
    ("coverage", "coverage", "{:.3f}"),
    ("diversity", "diversity", "{:.3f}"),
    ("updates_per_s", "updates/s", "{:.1f}"),
    ("train_seconds", "train s", "{:.1f}"),
    (HR_AT_10, "HR@10", "{:.4f}"),
    (NDCG_AT_10, "NDCG@10", "{:.4f}"),
]


def _clean(value):
    """JSON-safe: NaN/inf become null, numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _fmt(value, pattern: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return pattern.format(value)


def write_json(path: str, results: dict) -> None:
    write_text(path, json.dumps(_clean(results), indent=2) + "\n")


def markdown(results: dict) -> str:
    """report.md: the smoke banner (smoke runs), the five-line summary, the settings, the agent table, the
    off-policy estimates and the targets (a smoke run's without verdicts)."""
    meta = results["meta"]
    level = meta.get("ci_level", 0.95)
    lines = ["# recengine compare", "", *opening(results)]
    if meta.get("fallback"):
        lines += [f"> **Note:** {meta['fallback']}", ""]
    lines += [
        f"Simulator: {meta['simulator']}; {meta['num_items']} items, slates of {meta['slate_size']}, "
        f"{meta['eval_sessions']} greedy evaluation sessions per agent, seed {meta['seed']}"
        f"{' (quick smoke settings)' if meta.get('quick') else ''}. Wall time {meta['wall_seconds']:.0f} s "
        f"on {machine_summary(meta['machine'])}. {REPRODUCIBILITY}.",
        "",
        "| agent | " + " | ".join(title for _, title, _ in COLUMNS) + " |",
        "|---|" + "---:|" * len(COLUMNS),
    ]
    for name, entry in results["agents"].items():
        cells = [_fmt(entry.get(key), pattern) for key, _, pattern in COLUMNS]
        if entry.get("return_ci95"):  # the interval's half-width beside the mean
            cells[0] += f" ± {_fmt(entry['return_ci95'][1] - entry['avg_return'], '{:.3f}')}"
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for name, entry in (results.get("oracles") or {}).items():
        cells = [_fmt(entry.get(key), pattern) for key, _, pattern in COLUMNS]
        cells[0] += f" ± {_fmt(entry['return_ci95'][1] - entry['avg_return'], '{:.3f}')}"
        lines.append(f"| {headroom.label(name)} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"return / session ± the half-width of its {level:.0%} confidence interval "
        f"({meta.get('seeds', 1)} training seed(s) × {meta['eval_sessions']} sessions); "
        "return / session: mean clicks per simulated session under the greedy policy; CTR: clicks per slate shown; "
        "coverage: share of the catalogue recommended at least once; diversity: mean pairwise (1 − cosine) of the "
        "simulator's item vectors within a slate, averaged per session (see Beyond accuracy); updates/s: gradient "
        "steps per second of training (loop "
        "included); HR@10 / NDCG@10: leave-one-out, full ranking, seen items masked, for agents with a model "
        "fitted to the data."
        + (
            " The oracle rows are planners that read the simulator's own model (the users' true state): "
            "yardsticks of what is there to win, never agents one could deploy; they play the first "
            f"{results.get('headroom', {}).get('sessions_per_seed', '?')} of each seed's sessions (the same "
            "users and draws as the agents')."
            if results.get("oracles")
            else ""
        ),
        "",
    ]
    lines += _paired_section(results, level)
    lines += beyond_accuracy.section(results)
    ope = results.get("ope")
    if ope:
        lines += [
            "## Off-policy evaluation",
            "",
            f"For each target policy, {ope.get('sessions', '?')} sessions are logged by the logging policy "
            f"({ope['logging_policy']}) and the target's return per session is estimated from those logs "
            "(per-decision importance ratios over the ordered slates; DR with a click model fitted on the "
            "logs), then compared with its true value from as many on-policy sessions in the same "
            "simulator.",
            "",
            "| target policy | true value | estimator | estimate | relative error |",
            "|---|---:|---|---:|---:|",
        ]
        for target, row in ope["targets"].items():
            for est, value in row["estimates"].items():
                rel = row["relative_error"][est]
                lines.append(
                    f"| {target} | {row['true_value']:.4f} | {est} | {_fmt(value, '{:.4f}')} | {_fmt(rel, '{:.1%}')} |"
                )
        lines.append("")
    if results.get("simulator_validation"):
        from recengine.judging.simulator_validation import validation_markdown

        lines += [validation_markdown(results["simulator_validation"]).rstrip(), ""]
    lines += _rl_section(results)
    lines += headroom.mechanism_section(results)
    if results.get("simulator_file"):
        lines += [
            f"The fitted simulator is saved as `{results['simulator_file']}` beside this report: "
            "`recengine.env.load_simulator(path)` reloads it, and `sim.response.score_histories(histories)` "
            "or `sim.response.evaluate(split)` scores its user model on other data.",
            "",
        ]
    checks = None if is_smoke(results) else results.get("targets")  # a smoke run judges nothing
    if checks:
        lines += ["## Targets", ""]
        evidence = results.get("target_evidence", {})
        for text, ok in checks.items():
            mark = "met" if ok else ("not met" if ok is False else "not measured")
            why = "; ".join(_diff(d) for d in evidence.get(text, []))
            lines.append(f"- {text}: **{mark}**" + (f" (paired difference {why})" if why else ""))
        if evidence:
            lines.append(
                f"\nA comparison counts as met only when the lower bound of the {level:.0%} interval of "
                "its paired difference is above 0 (with several seeds, the seeds' interval's too)."
                + (
                    " These verdicts come from one training seed on one machine: not robust until they hold "
                    "over several seeds (--seeds 5)."
                    if (meta.get("seeds") or 1) < 2
                    else ""
                )
            )
        lines.append("")
    if results.get("plots"):
        lines += ["## Learning curves", "", curve_caption(results), ""]
        lines += [f"![{p}]({p})" for p in results["plots"]] + [""]
    lines += _time_section(meta)
    return "\n".join(lines)


def _time_section(meta: dict) -> list[str]:
    """Where the time went: each phase's wall-clock and CPU seconds (CPU well below wall x threads: the machine
    was shared)."""
    phases = meta.get("phases")
    if not phases:
        return []
    lines = ["## Where the time went", "", "| phase | wall s | CPU s |", "|---|---:|---:|"]
    lines += [f"| {name} | {p['wall_s']:.0f} | {p['cpu_s']:.0f} |" for name, p in phases.items()]
    return lines + ["", f"Whole run: {meta['wall_seconds']:.0f} s wall on {machine_summary(meta['machine'])}.", ""]


def curve_caption(results: dict) -> str:
    """What each learning-curve point is measured on, and how that differs from the table's figures."""
    meta = results["meta"]
    per_point = (meta.get("config") or {}).get("curve_sessions")
    if per_point is None:
        return "Greedy return per session against the recommendations served while training."
    return (
        f"Greedy return per session against the recommendations served while training; each point is measured "
        f"on {per_point} sessions, the table above on {meta['eval_sessions']} per agent, so the last point and the "
        "table's figure differ by that sampling (the band is each point's 95% interval)."
    )


def _rl_section(results: dict) -> list[str]:
    """ "Does RL beat the large model?": every check of each hybrid against the large model, and the verdict (in a
    smoke run, the differences alone)."""
    verdicts = results.get("rl_vs_large_model") or {}
    gap = headroom.answer_lines(results)
    if not verdicts:
        return ["## Does RL beat the large model?", "", *gap] if gap else []
    if is_smoke(results):
        lines = [
            "## RL on top of the large model",
            "",
            "Return per session of each hybrid minus the large model's, paired over the same sessions (smoke "
            "settings: no outcome is read from them):",
            "",
            "| hybrid | check | difference [95% CI] |",
            "|---|---|---:|",
        ]
        for hybrid, v in verdicts.items():
            for check, r in v["checks"].items():
                lines.append(f"| {hybrid} | {check} | {_diff(r)} |")
        return lines + ["", *gap]
    lines = [
        "## Does RL beat the large model?",
        "",
        *gap,
        "Return per session of each hybrid minus the large model's, paired over the same sessions, in the main "
        "simulator and in the robustness checks (training seed 0's agents outside the main simulator):",
        "",
        "| hybrid | check | difference [95% CI] | outcome |",
        "|---|---|---:|---|",
    ]
    for hybrid, v in verdicts.items():
        for check, r in v["checks"].items():
            cell = f"{r['diff']:+.3f} [{r['ci95'][0]:+.3f}, {r['ci95'][1]:+.3f}]"
            if r.get("seed_ci95"):
                cell += f" (seeds [{r['seed_ci95'][0]:+.3f}, {r['seed_ci95'][1]:+.3f}])"
            lines.append(f"| {hybrid} | {check} | {cell} | {r['outcome']} the large model |")
    variants = (results.get("robustness") or {}).get("variants", {})
    if variants:
        lines += [""] + [f"- {name}: {v['description']}." for name, v in variants.items()]
    from recengine.report.robustness import overall

    lines += [""] + [f"**{overall(verdicts)}**", ""] + [v["summary"] for v in verdicts.values()] + [""]
    return lines


def _diff(d: dict | None) -> str:
    """+0.082 [+0.017, +0.147]: a paired difference and its interval."""
    if not d:
        return "–"
    text = f"{d['diff']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]"
    if d.get("seed_ci95"):  # several training seeds: the interval of the per-seed differences
        text += f" (seeds [{d['seed_ci95'][0]:+.3f}, {d['seed_ci95'][1]:+.3f}])"
    return text


def _paired_section(results: dict, level: float) -> list[str]:
    """The paired differences against the baselines and the learning-curve gains, with their intervals."""
    agents = results["agents"]
    bases = [b for b in PAIRED_BASELINES if b in agents]
    if not bases or not any(e.get("paired") for e in agents.values()):
        return []
    lines = [
        "## Paired differences",
        "",
        f"Return per session of each agent minus a baseline's, session by session on the same simulated "
        f"sessions (same users, same random draws), with the {level:.0%} interval; the learning-curve gain is "
        'the last curve point minus the first, paired the same way. With several training seeds, "seeds" '
        "gives the Student-t interval of the per-seed differences (the spread over training runs, which the "
        "sessions' interval does not cover). Against large-model-logged (the large model with each user's logged "
        "items excluded, no RL): what a hybrid gains beyond that exclusion.",
        "",
        "| agent | " + " | ".join(f"vs {b}" for b in bases) + " | learning-curve gain | per-seed return |",
        "|---|" + "---:|" * (len(bases) + 2),
    ]
    for name, entry in agents.items():
        cells = [_diff(entry.get("paired", {}).get(b)) if b != name else "–" for b in bases]
        cells.append(_diff(entry.get("curve_gain")))
        cells.append(", ".join(f"{v:.3f}" for v in entry.get("seed_returns", [])) or "–")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines + [""]


def write_markdown(path: str, results: dict) -> None:
    write_text(path, markdown(results))


def plot_curves(path: str, results: dict) -> bool:
    """Greedy return per session against environment steps, one line per learning agent, baselines flat.
    Returns False (and writes nothing) when no agent has a curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {n: e["curve"] for n, e in results["agents"].items() if e.get("curve")}
    if not curves:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, curve in curves.items():
        x = [p["recommendations"] for p in curve]
        (line,) = ax.plot(x, [p["avg_return"] for p in curve], marker="o", ms=3, label=name)
        if all(p.get("return_ci95") for p in curve):  # each point's 95% interval as a band
            ax.fill_between(
                x,
                [p["return_ci95"][0] for p in curve],
                [p["return_ci95"][1] for p in curve],
                color=line.get_color(),
                alpha=0.12,
                lw=0,
            )
    for name, entry in results["agents"].items():
        if not entry.get("curve") and entry.get("avg_return") is not None:
            ax.axhline(entry["avg_return"], ls="--", lw=1, color="grey")
            ax.annotate(
                name,
                (0, entry["avg_return"]),
                xycoords=("axes fraction", "data"),
                fontsize=7,
                color="grey",
                va="bottom",
            )
    ax.set_xlabel("recommendations served while training")
    ax.set_ylabel("greedy return per session")
    meta = results.get("meta", {})
    per_point = (meta.get("config") or {}).get("curve_sessions")
    title = "Learning curves in the simulator" + (" (smoke run)" if meta.get("quick") else "")
    if per_point is not None:
        title += f"\neach point: {per_point} sessions; the report's table: {meta.get('eval_sessions', '?')} per agent"
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
