"""Quantized-tables family workloads: the catalog top-k over the serving tables (W2's catalog, serving batches).

B = 64 users (quick: 16) against W2's catalog, N = 262,144 items x D = 64, k = 10, with bias. The recengine case
reads row-wise int8 rows (codes + a float scale and bias per row: 0.28x the float32 bytes) without a dequantised
copy; the bfloat16 table and the float32 table (catalog_topk, the policy family) run beside it, and the
reference dequantises the whole table, then matmul + topk. Each case states the FLOPs of the scoring GEMM.
"""

from __future__ import annotations

from recengine.bench import RECENGINE, Case, Workload
from recengine.bench.catalog import catalog_inputs, catalog_shape

BF16_TABLE = "recengine, bfloat16 table"
F32_TABLE = "recengine, float32 table (catalog_topk)"
REF_QTOPK = "reference: dequantize + matmul + topk"


def workloads(device: str, quick: bool = False) -> list[Workload]:
    from recengine import ops
    from recengine.ops.table_formats import quantize_rows
    from recengine.reference import quantized_tables as qref

    _, N, D, k = catalog_shape(quick)
    name = "W2" if not quick else "W2-quick"
    serve_b = 16 if quick else 64
    serve_flops = 2.0 * serve_b * N * D

    def table_topk():
        """Serving-sized batches against inference tables: int8 rows (codes + per-row scale and bias) is the
        recengine case; bfloat16 and float32 tables and the dequantize-then-matmul reference beside it."""
        Q, E, bias, _ = catalog_inputs(device, serve_b, N, D)
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
        Workload(
            f"{name} top-k over int8 table",
            (RECENGINE, BF16_TABLE, F32_TABLE, REF_QTOPK),
            table_topk,
            note=f"B={serve_b} N={N} D={D} k={k}, with bias: the serving tables (int8: 0.28x the float32 bytes)",
        ),
    ]
