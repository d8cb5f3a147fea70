"""The machine a result came from: what every results file records, so two runs can be told apart.

A seed fixes a run's figures on one machine: the same CPU model, thread count and torch/numpy/numba versions
give bit-identical results. Across machines the float training of the learning agents takes other GEMM kernels
and other ISA paths and drifts. `describe_machine()` records what decides that: the CPU model and its vector features,
the ISA path each kernel family of recengine._C takes right now, torch's own dispatch level, the thread count,
the versions, Python and the OS.

``RECENGINE_PORTABLE=1`` (read once, when the extension loads) sends every recengine kernel down its portable
path: the embedding kernels' plain C++ loops instead of the AVX-512/AVX2 bodies, catalog top-k without the
AVX512-BF16 prefilter, the catalog sweeps' portable tile GEMM instead of the process's BLAS, and the baseline
build of the vector loops (the AVX-512 build contracts multiply-adds into FMA). What stays exact across the paths
(tests/ops/test_portable_paths.py): the catalog top-k's ids and unweighted pooling, bit for bit; the top-k
scores, weighted pooling and the fused optimizer steps agree to float32 rounding. torch's own
operators have their switches (``ATEN_CPU_CAPABILITY=default``; MKL's ``MKL_CBWR``); `describe_machine()` records them
when set.
"""

from __future__ import annotations

import os
import platform
from importlib import metadata

import torch

#: what a seed fixes, in the words the reports use
REPRODUCIBILITY = (
    "The same seed gives bit-identical figures on the same CPU model, thread count and torch/numpy/numba "
    "versions; on another machine the learning agents' figures differ (their float training takes other GEMM "
    "kernels and ISA paths), so a single-seed verdict holds for this machine only"
)

#: environment variables that change which code paths run (or how many threads): recorded when set
PATH_ENV = (
    "RECENGINE_PORTABLE",
    "ATEN_CPU_CAPABILITY",
    "MKL_CBWR",
    "MKL_ENABLE_INSTRUCTIONS",
    "ONEDNN_MAX_CPU_ISA",
    "OPENBLAS_CORETYPE",
    "OMP_NUM_THREADS",
)

#: CPU features (as /proc/cpuinfo names them) that select a kernel path here or in torch
FEATURES = ("avx2", "fma", "avx512f", "avx512bw", "avx512_bf16", "amx_tile", "amx_bf16")

_EMBEDDING_ISA = {2: "avx512", 1: "avx2", 0: "portable"}
_VECTOR_ISA = {2: "avx512f", 1: "avx2", 0: "baseline"}


def _cpuinfo() -> tuple[str, set[str]]:
    """(the CPU model, with its family/model/stepping numbers where /proc/cpuinfo gives them; its flags)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break  # the first processor's block is enough
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    name = fields.get("model name") or platform.processor() or platform.machine()
    ids = [f"{k} {fields[k]}" for k in ("cpu family", "model", "stepping") if k in fields]
    return (f"{name} ({', '.join(ids)})" if ids else name), set(fields.get("flags", "").split())


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def kernel_paths() -> dict:
    """The ISA path each recengine._C kernel family takes now (asked of the extension's runtime dispatch)."""
    from recengine import _C

    return {
        "portable_forced": bool(_C.portable_forced()),
        "embedding_bag": _EMBEDDING_ISA.get(int(_C.embedding_bag_isa()), "portable"),
        "catalog_topk_prefilter": "avx512_bf16" if _C.policy_topk_bf16() else "none",
        "catalog_gemm": "portable" if _C.policy_portable_gemm() else "blas",
        # catalog top-k of a few rows: AVX-512 dot products straight from the table, or the tile GEMM
        "catalog_small_batch": "avx512_direct" if _C.policy_topk_direct() else "gemm",
        # the catalog sweeps' and quantized tables' loops, built for AVX-512 (which contracts into FMA), AVX2 or
        # the baseline
        "vector_loops": _VECTOR_ISA.get(int(_C.vector_isa()), "baseline"),
    }


def describe_machine() -> dict:
    """The machine, as every results file records it (JSON-ready)."""
    name, flags = _cpuinfo()
    get_capability = getattr(torch.backends.cpu, "get_cpu_capability", None)
    return {
        "cpu": name,
        "arch": platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_features": [f for f in FEATURES if f in flags],
        "kernels": kernel_paths(),
        "torch_cpu_capability": get_capability() if get_capability else None,
        "versions": {
            "recengine": _version("recengine"),
            "torch": torch.__version__,
            "numpy": _version("numpy"),
            "numba": _version("numba"),
            "python": platform.python_version(),
        },
        "os": platform.platform(),
        "env": {k: os.environ[k] for k in PATH_ENV if k in os.environ},
    }


def machine_summary(machine: dict | None = None) -> str:
    """One line for a report: CPU, threads, the kernels' paths and the versions."""
    m = machine if machine is not None else describe_machine()
    if isinstance(m, str):  # results written before the machine was recorded in full
        return m
    k, v = m.get("kernels", {}), m.get("versions", {})
    paths = (
        "portable kernels (RECENGINE_PORTABLE)"
        if k.get("portable_forced")
        else (
            f"kernels {k.get('embedding_bag')}"
            + (", bf16 prefilter" if k.get("catalog_topk_prefilter", "none") != "none" else "")
            + f", {k.get('catalog_gemm')} GEMM"
        )
    )
    return (
        f"{m.get('cpu')}, {m.get('cores')} cores, {m.get('torch_threads')} threads, {paths}, "
        f"torch {v.get('torch')} ({m.get('torch_cpu_capability')}), numpy {v.get('numpy')}, "
        f"numba {v.get('numba')}, python {v.get('python')}"
    )
