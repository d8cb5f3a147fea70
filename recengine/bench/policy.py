"""Policy family workloads: W2 = catalog scoring, B = 1024 users x N = 262,144 items, D = 64, k = 10.

Every case states its FLOPs (2*B*N*D per pass over the catalog: the GEMM the scoring cannot avoid),
so the table prints the fraction of the machine's GEMM rate reached, and measures the peak extra
memory of one call (the references' logits alone are B*N*4 bytes = 1 GiB at W2).
The bare matmul Q @ E.T is the bound every op is up against.
"""

from __future__ import annotations

import torch

from recengine.bench import RECENGINE, Case, Workload

REF_MATMUL = "peer: torch Q @ E.T (the bound)"
REF_TOPK = "reference: matmul + topk"
PEER_TOPK = "peer: torch.topk(Q @ E.T + bias), tie order unchecked"
REF_SAMPLE_MULTINOMIAL = "reference: log_softmax + multinomial"
REF_SAMPLE_GUMBEL = "reference: Gumbel-max, torch RNG"
REF_SAMPLE_HASH = "reference: hashed Gumbel-top-k (same draws)"
REF_LSE = "reference: matmul + logsumexp"
REF_CE = "reference: matmul + cross_entropy, autograd"
BF16_TABLE = "recengine, bfloat16 table"
F32_TABLE = "recengine, float32 table (catalog_topk)"
REF_QTOPK = "reference: dequantize + matmul + topk"


def _shape(quick: bool):
    return (64, 8192, 32, 10) if quick else (1024, 262144, 64, 10)


def _inputs(device: str, B: int, N: int, D: int):
    g = torch.Generator().manual_seed(0)
    # unit-variance logits, like a trained two-tower model's (the sampler's filters get no help from scale)
    Q = (torch.randn(B, D, generator=g) / D**0.25).to(device)
    E = (torch.randn(N, D, generator=g) / D**0.25).to(device)
    bias = (0.1 * torch.randn(N, generator=g)).to(device)
    target = torch.randint(0, N, (B,), generator=g).to(device)
    return Q, E, bias, target


def workloads(device: str, quick: bool = False) -> list[Workload]:
    from recengine import ops
    from recengine.reference import policy as ref

    B, N, D, k = _shape(quick)
    tag = f"B={B} N={N} D={D}"
    name = "W2" if not quick else "W2-quick"
    flops = 2.0 * B * N * D

    def matmul():
        Q, E, _, _ = _inputs(device, B, N, D)
        return {REF_MATMUL: Case(lambda: Q @ E.T, flops=flops, measure_memory=True)}

    def topk():
        Q, E, bias, _ = _inputs(device, B, N, D)
        return {
            RECENGINE: Case(lambda: ops.catalog_topk(Q, E, k, bias=bias), flops=flops, measure_memory=True),
            REF_TOPK: Case(lambda: ref.catalog_topk_reference(Q, E, k, bias=bias), flops=flops, measure_memory=True),
            # the reference also checks for ties at the k-th score (two more passes over the logits)
            PEER_TOPK: Case(lambda: torch.topk(torch.addmm(bias, Q, E.T), k, dim=1), flops=flops, measure_memory=True),
        }

    def sample():
        Q, E, bias, _ = _inputs(device, B, N, D)
        gen = torch.Generator(device=device).manual_seed(0)
        cases = {
            RECENGINE: Case(lambda: ops.catalog_sample(Q, E, k, 1234, bias=bias), flops=flops, measure_memory=True),
            REF_SAMPLE_MULTINOMIAL: Case(
                lambda: ref.catalog_sample_torch_rng_reference(Q, E, k, bias=bias, method="multinomial", generator=gen),
                flops=flops,
                measure_memory=True,
            ),
            REF_SAMPLE_GUMBEL: Case(
                lambda: ref.catalog_sample_torch_rng_reference(Q, E, k, bias=bias, method="gumbel", generator=gen),
                flops=flops,
                measure_memory=True,
            ),
        }
        if quick:  # the hashed noise in plain torch integer ops is by far the slowest provider at full size
            cases[REF_SAMPLE_HASH] = Case(
                lambda: ref.catalog_sample_reference(Q, E, k, 1234, bias=bias), flops=flops, measure_memory=True
            )
        return cases

    def logsumexp():
        Q, E, bias, _ = _inputs(device, B, N, D)
        return {
            RECENGINE: Case(lambda: ops.catalog_logsumexp(Q, E, bias=bias), flops=flops, measure_memory=True),
            REF_LSE: Case(lambda: ref.catalog_logsumexp_reference(Q, E, bias=bias), flops=flops, measure_memory=True),
        }

    def cross_entropy():
        Q, E, bias, target = _inputs(device, B, N, D)
        leaves = [t.clone().requires_grad_() for t in (Q, E, bias)]

        def clear():
            for t in leaves:
                t.grad = None

        def ours():
            ops.catalog_cross_entropy(leaves[0], leaves[1], target, bias=leaves[2]).backward()

        def reference():
            ref.catalog_cross_entropy_reference(leaves[0], leaves[1], target, bias=leaves[2]).backward()

        # useful work: the forward GEMM and the two backward GEMMs (ours also recomputes the logits)
        return {
            RECENGINE: Case(ours, flops=3 * flops, setup=clear, measure_memory=True),
            REF_CE: Case(reference, flops=3 * flops, setup=clear, measure_memory=True),
        }

    serve_b = 16 if quick else 64
    serve_flops = 2.0 * serve_b * N * D

    def table_topk():
        """Serving-sized batches against inference tables: int8 rows (codes + per-row scale and bias) is the
        recengine case; bfloat16 and float32 tables and the dequantize-then-matmul reference beside it."""
        from recengine.ops.table_formats import quantize_rows
        from recengine.reference import quantized_tables as qref

        Q, E, bias, _ = _inputs(device, serve_b, N, D)
        rows8, sb8 = quantize_rows(E, "int8")
        rows16, _ = quantize_rows(E, "bfloat16")
        return {
            RECENGINE: Case(lambda: ops.quantized_catalog_topk(Q, rows8, sb8, k, bias=bias), flops=serve_flops),
            BF16_TABLE: Case(lambda: ops.quantized_catalog_topk(Q, rows16, None, k, bias=bias), flops=serve_flops),
            F32_TABLE: Case(lambda: ops.catalog_topk(Q, E, k, bias=bias), flops=serve_flops),
            REF_QTOPK: Case(
                lambda: qref.quantized_catalog_topk_reference(Q, rows8, sb8, k, bias=bias),
                flops=serve_flops,
                measure_memory=True,
            ),
        }

    return [
        Workload(f"{name} matmul bound", (REF_MATMUL,), matmul, note=f"{tag}: Q @ E.T, a fresh B x N output"),
        Workload(f"{name} top-k", (RECENGINE, REF_TOPK, PEER_TOPK), topk, note=f"{tag} k={k}, with bias"),
        Workload(
            f"{name} sample",
            (RECENGINE, REF_SAMPLE_MULTINOMIAL, REF_SAMPLE_GUMBEL, REF_SAMPLE_HASH),
            sample,
            note=f"{tag} k={k} without replacement, with log-probs",
        ),
        Workload(f"{name} logsumexp", (RECENGINE, REF_LSE), logsumexp, note=tag),
        Workload(
            f"{name} cross-entropy fwd+bwd",
            (RECENGINE, REF_CE),
            cross_entropy,
            note=f"{tag}: grads w.r.t. Q, E and bias (dE alone is N*D*4 bytes)",
        ),
        Workload(
            f"{name} top-k over int8 table",
            (RECENGINE, BF16_TABLE, F32_TABLE, REF_QTOPK),
            table_topk,
            note=f"B={serve_b} N={N} D={D} k={k}, with bias: the serving tables (int8: 0.28x the float32 bytes)",
        ),
    ]
