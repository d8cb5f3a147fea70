// The block-major catalog top-k: threads take blocks of the catalog (not rows of the batch), so a batch of one
// still uses every thread and the table is read once; each block is widened to float32 once (int8 codes or
// bfloat16 bits; a float32 table is read in place) and scored against every row of the batch with the tile GEMM.
// Shared by the float32 top-k at small batches (policy_kernels.cpp) and the inference tables' top-k
// (quantized_tables.cpp). Raw pointers and sizes; the bindings check arrays and release the GIL.
#pragma once

#include <cstdint>

namespace recengine::policy {

// How the catalog's N x D rows are stored.
enum class RowStorage { kFloat32, kInt8, kBf16 };

// The catalog: `rows` (N x D float32, int8 codes or bfloat16 bits, row-major) and, for int8, `scale_shift`
// (N x 2: value = scale * code + shift).
struct CatalogRows {
  RowStorage storage;
  const void* rows;
  const float* scale_shift;
};

// Same contract as the other top-k sweeps: per-row heaps in, heaps out (unsorted; heaps_finish sorts them).
// The logit of (row b, item a) is (Q[b] . row a + bias[a]) * inv_temp, b's excluded items never enter.
void topk_sweep_blocks(const CatalogRows& cat, const float* Q, int64_t B, int64_t N, int64_t D, const float* bias,
                       float inv_temp, const int64_t* ex_off, const int64_t* ex_ids, int64_t k, float* heap_val,
                       int64_t* heap_id, int64_t* heap_n);

// Heaps -> sorted rows, best first (value descending, id ascending); aux travels along (may be null).
void heaps_finish(int64_t B, int64_t k, float* heap_val, int64_t* heap_id, float* heap_aux, const int64_t* heap_n);

}  // namespace recengine::policy
