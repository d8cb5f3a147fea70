"""RECENGINE_PORTABLE=1 sends every kernel down its portable path; where the project claims exactness the
outputs are bit-identical to the ISA-specific paths (AVX-512, AVX2, the AVX512-BF16 prefilter) this CPU takes.

The switch is read once, when the extension loads, so each path runs in a child process of its own on the
same inputs; the parent compares what they wrote.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CHILD = textwrap.dedent(
    """
    import sys
    import torch
    torch.set_num_threads(1)  # one thread: the bf16 sweep runs for 48+ rows, and no thread count differs
    from recengine.machine import kernel_paths
    from recengine.ops.embedding_bag import embedding_bag, embedding_bag_fused_update
    from recengine.ops.policy import catalog_topk
    from recengine.ops.quantized_tables import quantized_catalog_topk
    from recengine.ops.table_formats import quantize_rows
    from tests.helpers import (
        OPTIMIZER_SETTINGS, initial_optimizer_state, kernel_state_tensors, make_bag_inputs, make_catalog_case,
    )

    out = {"paths": kernel_paths()}
    for B, N, D, k in ((64, 997, 64, 10), (130, 501, 33, 40), (48, 301, 24, 5)):
        for bias, excl, T in ((True, True, 0.7), (False, False, 1.0)):
            Q, E, kw = make_catalog_case(B=B, N=N, D=D, bias=bias, excl=excl, seed=B + N + D)
            scores, ids = catalog_topk(Q, E, k, temperature=T, **kw)
            out[f"topk {B}x{N}x{D} k={k} bias={bias}"] = (scores, ids)
    # small batches: the block sweep (direct AVX-512 dot products, or the tile GEMM), float32 and inference tables
    for B, N, D, k, excl in ((1, 1000, 64, 10, True), (5, 777, 33, 7, True), (12, 300, 16, 30, False)):
        Q, E, kw = make_catalog_case(B=B, N=N, D=D, bias=True, excl=excl, seed=B + N + D)
        out[f"small-batch top-k float32 {B}x{N}x{D}"] = catalog_topk(Q, E, k, **kw)
        for fmt in ("int8", "bfloat16"):
            rows, scale_bias = quantize_rows(E, fmt)
            out[f"small-batch top-k {fmt} {B}x{N}x{D}"] = quantized_catalog_topk(Q, rows, scale_bias, k, **kw)
    for dim in (32, 64, 128, 24):
        rows, batch = [40, 7, 25], 6
        w, to, ids, offs, p = make_bag_inputs(47 + dim, rows, batch, dim, psw=True, hot=True)
        out[f"forward sum D={dim}"] = embedding_bag(w, to, ids, offs, pooling="sum")
        out[f"forward mean D={dim}"] = embedding_bag(w, to, ids, offs, pooling="mean")
        out[f"forward weighted D={dim}"] = embedding_bag(w, to, ids, offs, p, pooling="sum")
        grad = torch.randn(batch, len(rows) * dim, generator=torch.Generator().manual_seed(dim))
        for optimizer, hp in OPTIMIZER_SETTINGS.items():
            for psw in (None, p):
                state = initial_optimizer_state(optimizer, w.shape[0], dim)
                weights, kst = w.clone(), {k: v.clone() for k, v in state.items()}
                s1, s2 = kernel_state_tensors(optimizer, kst)
                embedding_bag_fused_update(
                    grad, weights, to, ids, offs, psw, pooling="sum", optimizer=optimizer, state1=s1, state2=s2,
                    step=2, **hp,
                )
                out[f"{optimizer} psw={psw is not None} D={dim}"] = (weights, kst)
    torch.save(out, sys.argv[1])
    """
)

#: the outputs the project claims exact on every path: the catalog top-k's ids (the float32 top-k, whether or not
#: the bf16 prefilter ran) and unweighted pooling (row sums in a fixed order). The rest may differ in the last
#: bits: the vector paths contract multiply-adds into FMA (see test_the_rest_agrees_to_rounding).
EXACT = ("forward sum", "forward mean")


def _run(path: str, portable: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "RECENGINE_PORTABLE"}
    if portable:
        env["RECENGINE_PORTABLE"] = "1"
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    subprocess.run([sys.executable, "-c", CHILD, path], check=True, cwd=ROOT, env=env, timeout=300)
    return torch.load(path, weights_only=False)


@pytest.fixture(scope="module")
def both_paths(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("portable")
    return _run(str(tmp / "isa.pt"), False), _run(str(tmp / "portable.pt"), True)


def _equal(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, tuple | list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return a == b


def test_the_switch_reaches_every_kernel_family(both_paths):
    isa, portable = both_paths[0]["paths"], both_paths[1]["paths"]
    assert not isa["portable_forced"] and portable["portable_forced"]
    assert portable["embedding_bag"] == "portable"
    assert portable["catalog_topk_prefilter"] == "none"
    assert portable["catalog_gemm"] == "portable"
    assert portable["catalog_small_batch"] == "gemm"
    assert portable["vector_loops"] == "baseline"


def test_portable_and_isa_paths_agree_bit_for_bit_where_exactness_is_claimed(both_paths):
    isa, portable = both_paths
    topk = [k for k in isa if k.startswith("topk")]
    pooled = [k for k in isa if k.startswith(EXACT)]
    assert topk and pooled
    differ = [k for k in topk if not torch.equal(isa[k][1], portable[k][1])]
    differ += [k for k in pooled if not torch.equal(isa[k], portable[k])]
    assert not differ, f"portable and ISA paths differ: {differ}"


def test_the_rest_agrees_to_rounding(both_paths):
    """The top-k scores (the bf16 path's rescore and the AVX-512 tile loops use FMA), weighted pooling and the
    fused optimizer steps: equal to float32 rounding."""
    isa, portable = both_paths

    def close(a, b):
        if isinstance(a, torch.Tensor):
            return torch.allclose(a.float(), b.float(), rtol=1e-5, atol=1e-6)
        if isinstance(a, dict):
            return all(close(a[k], b[k]) for k in a)
        if isinstance(a, tuple | list):
            return all(close(x, y) for x, y in zip(a, b))
        return True

    for k in isa:
        if k != "paths":
            assert close(isa[k], portable[k]), k
