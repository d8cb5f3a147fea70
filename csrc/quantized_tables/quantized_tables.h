// Kernels over inference tables (row-wise int8 with a per-row scale and bias, or bfloat16 stored as uint16):
// the catalog top-k that dequantizes on the fly and the pooled lookup. Raw pointers and sizes; the bindings
// check arrays and release the GIL.
#pragma once

#include <cstdint>

namespace recengine::quantized {

// Row format of an inference table.
enum class RowFormat { kInt8, kBf16 };

// Top-k of (Q[b] . dequant(rows[a]) + bias[a]) over a = 0..N-1 per row b, excluded items never returned.
// rows: N x D int8 codes (with scale_bias N x 2: value = scale * code + bias) or N x D bfloat16 bits.
// out_val / out_id: B x k, best first (ties to the lower id); out_n: B, how many entries were found.
void catalog_topk(RowFormat fmt, const float* Q, const void* rows, const float* scale_bias, int64_t B, int64_t N,
                  int64_t D, const float* bias, const int64_t* ex_off, const int64_t* ex_ids, int64_t k, float* out_val,
                  int64_t* out_id, int64_t* out_n);

// Pooled lookup over stacked tables: out (B x T*D), bag j = t*B + b holds ids[offsets[j]:offsets[j+1]],
// local to table t whose rows start at table_offsets[t]; mean divides by the bag size (empty bag: zeros).
void embedding_bag(RowFormat fmt, const void* rows, const float* scale_bias, int64_t D, const int64_t* table_offsets,
                   int64_t T, int64_t B, const int64_t* ids, const int64_t* offsets, bool mean, float* out);

}  // namespace recengine::quantized
