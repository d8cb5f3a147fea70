// Inference-table kernels: catalog top-k that converts rows on the fly, and the pooled lookup.
//
// The top-k is the policy family's block-major sweep (policy/catalog_blocks.h): threads take blocks of the catalog,
// each block's rows are widened to float32 once (int8 codes exactly; the per-row scale and shift are applied to the
// dot products afterwards, scale * (q . codes) + shift * sum(q), never writing the row back in float32) and scored
// against every user with the tile GEMM, then folded into per-user k-best heaps. A batch of one still uses every
// thread, and the table is read once whatever the batch.
#include "quantized_tables/quantized_tables.h"

#include <omp.h>

#include <cstring>

#include "policy/catalog_blocks.h"
#include "policy/heap.h"

namespace recengine::quantized {
namespace {

constexpr int64_t kParallelLookup = 1 << 16;  // output floats below which the lookup runs on one thread

inline float bf16_to_float(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

}  // namespace

void catalog_topk(RowFormat fmt, const float* Q, const void* rows, const float* scale_bias, int64_t B, int64_t N,
                  int64_t D, const float* bias, const int64_t* ex_off, const int64_t* ex_ids, int64_t k, float* out_val,
                  int64_t* out_id, int64_t* out_n) {
  for (int64_t i = 0; i < B * k; ++i) {
    out_val[i] = policy::kNegInf;
    out_id[i] = -1;
  }
  for (int64_t b = 0; b < B; ++b) out_n[b] = 0;
  const policy::CatalogRows cat{fmt == RowFormat::kInt8 ? policy::RowStorage::kInt8 : policy::RowStorage::kBf16, rows,
                                scale_bias};
  policy::topk_sweep_blocks(cat, Q, B, N, D, bias, 1.0f, ex_off, ex_ids, k, out_val, out_id, out_n);
  policy::heaps_finish(B, k, out_val, out_id, nullptr, out_n);
}

void embedding_bag(RowFormat fmt, const void* rows, const float* scale_bias, int64_t D, const int64_t* table_offsets,
                   int64_t T, int64_t B, const int64_t* ids, const int64_t* offsets, bool mean, float* out) {
  // small lookups (a few short histories) stay on the calling thread
#pragma omp parallel for schedule(static) if (T * B * D >= kParallelLookup)
  for (int64_t bag = 0; bag < T * B; ++bag) {
    const int64_t t = bag / B, b = bag % B;
    float* o = out + b * T * D + t * D;
    for (int64_t d = 0; d < D; ++d) o[d] = 0.0f;
    for (int64_t p = offsets[bag]; p < offsets[bag + 1]; ++p) {
      const int64_t r = table_offsets[t] + ids[p];
      if (fmt == RowFormat::kInt8) {
        const int8_t* c = static_cast<const int8_t*>(rows) + r * D;
        const float scale = scale_bias[2 * r], shift = scale_bias[2 * r + 1];
        for (int64_t d = 0; d < D; ++d) o[d] += scale * static_cast<float>(c[d]) + shift;
      } else {
        const uint16_t* h = static_cast<const uint16_t*>(rows) + r * D;
        for (int64_t d = 0; d < D; ++d) o[d] += bf16_to_float(h[d]);
      }
    }
    const int64_t len = offsets[bag + 1] - offsets[bag];
    if (mean && len > 0)
      for (int64_t d = 0; d < D; ++d) o[d] /= static_cast<float>(len);
  }
}

}  // namespace recengine::quantized
