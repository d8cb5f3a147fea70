"""Policy family workloads: W2 = catalog scoring, B = 1024 users x N = 262,144 items, D = 64, k = 10.

Every case states its FLOPs (2*B*N*D per pass over the catalog: the GEMM the scoring cannot avoid),
so the table prints the fraction of the machine's GEMM rate reached, and measures the peak extra
memory of one call (the references' logits alone are B*N*4 bytes = 1 GiB at W2).
The bare matmul Q @ E.T is the bound every op is up against.
"""

from __future__ import annotations

import torch

from recengine.bench import RECENGINE, Case, Workload
from recengine.bench.catalog import catalog_inputs, catalog_shape

REF_MATMUL = "peer: torch Q @ E.T (the bound)"
REF_TOPK = "reference: matmul + topk"
PEER_TOPK = "peer: torch.topk(Q @ E.T + bias), tie order unchecked"
REF_SAMPLE_MULTINOMIAL = "reference: log_softmax + multinomial"
REF_SAMPLE_GUMBEL = "reference: Gumbel-max, torch RNG"
REF_SAMPLE_HASH = "reference: hashed Gumbel-top-k (same draws)"
REF_LSE = "reference: matmul + logsumexp"
REF_CE = "reference: matmul + cross_entropy, autograd"


def workloads(device: str, quick: bool = False) -> list[Workload]:
    from recengine import ops
    from recengine.reference import policy as ref

    B, N, D, k = catalog_shape(quick)
    tag = f"B={B} N={N} D={D}"
    name = "W2" if not quick else "W2-quick"
    flops = 2.0 * B * N * D

    def matmul():
        Q, E, _, _ = catalog_inputs(device, B, N, D)
        return {REF_MATMUL: Case(lambda: Q @ E.T, flops=flops, measure_memory=True)}

    def topk():
        Q, E, bias, _ = catalog_inputs(device, B, N, D)
        return {
            RECENGINE: Case(lambda: ops.catalog_topk(Q, E, k, bias=bias), flops=flops, measure_memory=True),
            REF_TOPK: Case(lambda: ref.catalog_topk_reference(Q, E, k, bias=bias), flops=flops, measure_memory=True),
            # the reference also checks for ties at the k-th score (two more passes over the logits)
            PEER_TOPK: Case(lambda: torch.topk(torch.addmm(bias, Q, E.T), k, dim=1), flops=flops, measure_memory=True),
        }

    def sample():
        Q, E, bias, _ = catalog_inputs(device, B, N, D)
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
        Q, E, bias, _ = catalog_inputs(device, B, N, D)
        return {
            RECENGINE: Case(lambda: ops.catalog_logsumexp(Q, E, bias=bias), flops=flops, measure_memory=True),
            REF_LSE: Case(lambda: ref.catalog_logsumexp_reference(Q, E, bias=bias), flops=flops, measure_memory=True),
        }

    def cross_entropy():
        Q, E, bias, target = catalog_inputs(device, B, N, D)
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
    ]
