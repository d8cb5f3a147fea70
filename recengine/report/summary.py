"""How a comparison report opens: the smoke-run banner and the five-line summary, so that the first screen of
report.md says what was run, what came out and how far to trust it.

    lines = opening(results)          # the banner (smoke runs only), then five "- " lines
    if is_smoke(results): ...         # a smoke run states no verdicts anywhere in the report

A smoke run (``recengine compare --quick``) trains every agent for a few steps only: its figures show that the
pipeline runs end to end, not how the agents compare, so its report opens with a banner saying so and the sections
that would judge (the targets, "does RL beat the large model?") show their numbers without a verdict.
"""

from __future__ import annotations

__all__ = ["SMOKE_BANNER", "is_smoke", "opening", "summary_lines"]

SMOKE_BANNER = (
    "> **Smoke run (`--quick`): not a result.** Every budget is cut to a few training steps and a few hundred "
    "sessions, so the figures below only show that the pipeline runs end to end; they say nothing about how the "
    "agents compare, and this report draws no conclusion from them. Run `recengine compare` without `--quick` for "
    "the comparison."
)
"""the banner at the top of a smoke run's report"""


def is_smoke(results: dict) -> bool:
    """Whether `results` (results.json's content) come from a smoke run (``--quick``)."""
    return bool(results.get("meta", {}).get("quick"))


def _interval(entry: dict) -> str:
    ci = entry.get("return_ci95")
    return f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""


def summary_lines(results: dict) -> list[str]:
    """Five lines: what was run, the best agent, RL on top of the large model, the simulator's validation, the
    targets (in a smoke run: that nothing is judged)."""
    meta, agents = results["meta"], results["agents"]
    smoke = is_smoke(results)
    run = (
        f"- **Run:** {len(agents)} agents on {meta['dataset']} ({meta.get('num_users', '?')} users, "
        f"{meta['num_items']} items) in a simulator fitted to its train split; {meta.get('seeds', 1)} training "
        f"seed(s), {meta['eval_sessions']} evaluation sessions per agent; {meta['wall_seconds']:.0f} s wall"
        f"{' (smoke settings)' if smoke else ''}."
    )
    scored = {n: e for n, e in agents.items() if e.get("avg_return") is not None}
    if scored:
        best = max(scored, key=lambda n: scored[n]["avg_return"])
        top = f"- **Highest return per session:** {best}, {scored[best]['avg_return']:.3f}{_interval(scored[best])}"
        if "large-model" in scored and best != "large-model":
            top += f"; the large model {scored['large-model']['avg_return']:.3f}{_interval(scored['large-model'])}"
        top += " (clicks per simulated session, 95% interval)."
    else:
        top = "- **Highest return per session:** no agent was measured."
    verdicts = results.get("rl_vs_large_model") or {}
    if smoke:
        rl = "- **RL on top of the large model:** not judged in a smoke run (the differences are in the tables)."
    elif verdicts:
        from recengine.report.robustness import overall

        rl = f"- **RL on top of the large model:** {overall(verdicts)}"
    else:
        rl = "- **RL on top of the large model:** no hybrid agent was run."
    validation = results.get("simulator_validation") or {}
    checks = validation.get("checks") or {}
    if checks:
        passed = sum(bool(ok) for ok in checks.values())
        sim = f"- **Simulator:** {passed} of {len(checks)} validation checks against the real held-out data passed"
        sim += " (on smoke budgets)." if smoke else "; see Simulator validation before trusting the figures."
    else:
        sim = "- **Simulator:** not validated in this run (too few policies with an offline score)."
    targets = results.get("targets") or {}
    if smoke:
        tgt = "- **Targets:** not judged in a smoke run."
    elif targets:
        met = sum(ok is True for ok in targets.values())
        measured = sum(ok is not None for ok in targets.values())
        tgt = f"- **Targets:** {met} of {measured} measured targets met (see Targets for each, with its interval)."
    else:
        tgt = "- **Targets:** none measured."
    return [run, top, rl, sim, tgt]


def opening(results: dict) -> list[str]:
    """The lines report.md opens with after its title: the smoke banner (smoke runs only), then the summary."""
    lines = [SMOKE_BANNER, ""] if is_smoke(results) else []
    return lines + ["## Summary", "", *summary_lines(results), ""]
