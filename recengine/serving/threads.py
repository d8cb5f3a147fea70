"""Thread and wait policies of a serving process: what they are, why, and the explicit ways to set them.

A recengine process holds two OpenMP runtimes: torch's (its wheel bundles libgomp) runs the Transformer, and
the one recengine._C links runs the lookup and top-k kernels. By default an OpenMP runtime keeps its worker
threads spinning for a while after each parallel region, waiting for the next. In serving, one request
alternates between the two runtimes (encoder, then top-k), and production hosts are shared with busy
neighbours: the spinning threads of one team take the cores the other team, or the neighbour, needs next.
benchmarks/RESULTS.md measures how much slower that is. The policy recengine serves with:

* ``OMP_WAIT_POLICY=PASSIVE``: idle OpenMP threads sleep at once. Each runtime reads the variable when it
  starts (when torch is imported), so it is a property of the process, set before that: ``recengine serve``
  sets it (``--omp-wait-policy``, default passive) before it imports torch; a program that embeds a
  Recommender sets it in its own environment (``OMP_WAIT_POLICY=PASSIVE python app.py``) or calls
  `set_wait_policy` first thing. Nothing in recengine changes it behind the caller's back.
* One thread runs the model per process (the HTTP micro-batcher's worker), and by default it is also the only
  intra-op thread (`recengine serve --threads 1`; `recengine.serving.http.serve(threads=...)` sets it once at
  startup): concurrency comes from batching requests (and from more processes), not from a second OpenMP
  worker. A PASSIVE worker sleeps between calls, and waking it for every parallel region costs more than a
  small call's work on an otherwise idle virtual machine (benchmarks/RESULTS.md, "Serving" measures it).
* Small calls (a single short history) run recengine's kernels on the calling thread: no team wakes up.
"""

from __future__ import annotations

import os
import sys

#: the OpenMP wait policies a serving process may choose
WAIT_POLICIES = ("passive", "active")


def set_wait_policy(policy: str = "passive") -> None:
    """Set OMP_WAIT_POLICY in this process's environment, for the OpenMP runtimes that have not started yet.

    Raises ValueError for an unknown policy, RuntimeError when torch is already imported with a different
    policy in force (its runtime has read the environment; the setting would silently not apply)."""
    if policy not in WAIT_POLICIES:
        raise ValueError(f"policy: expected one of {WAIT_POLICIES}, got {policy!r}")
    current = os.environ.get("OMP_WAIT_POLICY")
    if current is not None and current.lower() == policy:
        return
    if "torch" in sys.modules:
        raise RuntimeError(
            f"policy: OMP_WAIT_POLICY={policy.upper()} must be set before torch is imported "
            f"(it is {current!r} in this process); set it in the environment that starts it"
        )
    os.environ["OMP_WAIT_POLICY"] = policy.upper()


def serving_environment(policy: str = "passive", base: dict[str, str] | None = None) -> dict[str, str]:
    """A copy of `base` (default os.environ) with OMP_WAIT_POLICY set: the environment to start a serving
    child process with."""
    if policy not in WAIT_POLICIES:
        raise ValueError(f"policy: expected one of {WAIT_POLICIES}, got {policy!r}")
    return {**(os.environ if base is None else base), "OMP_WAIT_POLICY": policy.upper()}
