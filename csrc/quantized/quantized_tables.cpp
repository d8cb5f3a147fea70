// Inference-table kernels: catalog top-k that dequantizes rows on the fly, and the pooled lookup.
//
// The top-k splits every user's catalog sweep into item ranges so that a batch of one still uses every
// thread: task (b, s) keeps a k-best heap of user b over range s, then each user's S heaps are merged.
// An int8 score is scale * (q . codes) + bias * sum(q) + item_bias, the same value as the dot product with
// the dequantized row up to float rounding, without ever writing the row back in float32.
#include "quantized/quantized_tables.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "policy/heap.h"

namespace recengine::quantized {
namespace {

using policy::heap_offer;
using policy::heap_threshold;
using policy::kNegInf;

constexpr int64_t kBlock = 256;               // items scored into one stack buffer before they are offered to the heap
constexpr int64_t kParallelLookup = 1 << 16;  // output floats below which the lookup runs on one thread

inline float bf16_to_float(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// Dot products run over kLanes independent partial sums (one vector register of float32 on AVX-512, two on
// AVX2), summed at the end: a single running sum is a chain of dependent adds the compiler may not reorder
// into vector lanes (float addition is not associative), which left one scalar add per element.
constexpr int64_t kLanes = 16;

template <typename Load>
inline float dot_lanes(const float* q, int64_t D, Load load) {
  float acc[kLanes] = {};
  int64_t d = 0;
  for (; d + kLanes <= D; d += kLanes)
    for (int64_t l = 0; l < kLanes; ++l) acc[l] += q[d + l] * load(d + l);
  float tail = 0.0f;
  for (; d < D; ++d) tail += q[d] * load(d);
  float sum = 0.0f;
  for (int64_t l = 0; l < kLanes; ++l) sum += acc[l];
  return sum + tail;
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void score_int8(const float* q, float qsum,
                                                                             const int8_t* codes, const float* sb,
                                                                             int64_t D, int64_t n, float* out) {
  for (int64_t j = 0; j < n; ++j) {
    const int8_t* c = codes + j * D;
    const float acc = dot_lanes(q, D, [c](int64_t d) { return static_cast<float>(c[d]); });
    out[j] = sb[2 * j] * acc + sb[2 * j + 1] * qsum;
  }
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void score_bf16(const float* q, const uint16_t* rows,
                                                                             int64_t D, int64_t n, float* out) {
  for (int64_t j = 0; j < n; ++j) {
    const uint16_t* r = rows + j * D;
    out[j] = dot_lanes(q, D, [r](int64_t d) { return bf16_to_float(r[d]); });
  }
}

// Score items [lo, hi) for one user and fold them into the heap (hv, hi_, n of k).
void sweep_range(RowFormat fmt, const float* q, const void* rows, const float* scale_bias, int64_t D, const float* bias,
                 const int64_t* ex_b, const int64_t* ex_e, int64_t lo, int64_t hi, int64_t k, float* hv, int64_t* hid,
                 int64_t* hn) {
  float qsum = 0.0f;
  for (int64_t d = 0; d < D; ++d) qsum += q[d];
  float x[kBlock];
  int64_t n = *hn;
  for (int64_t j0 = lo; j0 < hi; j0 += kBlock) {
    const int64_t nb = std::min(kBlock, hi - j0);
    if (fmt == RowFormat::kInt8)
      score_int8(q, qsum, static_cast<const int8_t*>(rows) + j0 * D, scale_bias + 2 * j0, D, nb, x);
    else
      score_bf16(q, static_cast<const uint16_t*>(rows) + j0 * D, D, nb, x);
    if (bias)
      for (int64_t j = 0; j < nb; ++j) x[j] += bias[j0 + j];
    for (const int64_t* p = ex_b; p != ex_e; ++p) {
      const int64_t j = *p - j0;
      if (j >= 0 && j < nb) x[j] = kNegInf;
    }
    float thr = heap_threshold(hv, n, k);
    for (int64_t j = 0; j < nb; ++j)
      if (x[j] > thr) {
        n = heap_offer(hv, hid, nullptr, n, k, x[j], j0 + j, 0.0f);
        thr = heap_threshold(hv, n, k);
      }
  }
  *hn = n;
}

}  // namespace

void catalog_topk(RowFormat fmt, const float* Q, const void* rows, const float* scale_bias, int64_t B, int64_t N,
                  int64_t D, const float* bias, const int64_t* ex_off, const int64_t* ex_ids, int64_t k, float* out_val,
                  int64_t* out_id, int64_t* out_n) {
  const int64_t threads = omp_get_max_threads();
  // enough ranges per user to occupy every thread, none shorter than a few blocks
  const int64_t want = std::max<int64_t>(1, (threads + B - 1) / B);
  const int64_t S = std::max<int64_t>(1, std::min(want, N / (4 * kBlock)));
  const int64_t per = (N + S - 1) / S;
  std::vector<float> hv(static_cast<size_t>(B * S * k), kNegInf);
  std::vector<int64_t> hid(static_cast<size_t>(B * S * k), -1);
  std::vector<int64_t> hn(static_cast<size_t>(B * S), 0);
  // a single task runs on the calling thread: waking the team for it costs more than the sweep
#pragma omp parallel for schedule(dynamic, 1) if (B * S > 1)
  for (int64_t task = 0; task < B * S; ++task) {
    const int64_t b = task / S, s = task % S;
    const int64_t lo = s * per, hi = std::min(N, lo + per);
    const int64_t* ex_b = ex_off ? ex_ids + ex_off[b] : nullptr;
    const int64_t* ex_e = ex_off ? ex_ids + ex_off[b + 1] : nullptr;
    if (lo < hi)
      sweep_range(fmt, Q + b * D, rows, scale_bias, D, bias, ex_b, ex_e, lo, hi, k, hv.data() + task * k,
                  hid.data() + task * k, hn.data() + task);
  }
#pragma omp parallel for schedule(static) if (B > 1)
  for (int64_t b = 0; b < B; ++b) {
    std::vector<std::pair<float, int64_t>> all;
    all.reserve(static_cast<size_t>(S * k));
    for (int64_t s = 0; s < S; ++s)
      for (int64_t i = 0; i < hn[b * S + s]; ++i) all.emplace_back(hv[(b * S + s) * k + i], hid[(b * S + s) * k + i]);
    const int64_t n = std::min<int64_t>(k, static_cast<int64_t>(all.size()));
    std::partial_sort(all.begin(), all.begin() + n, all.end(), [](const auto& a, const auto& c) {
      return a.first > c.first || (a.first == c.first && a.second < c.second);
    });
    for (int64_t i = 0; i < n; ++i) {
      out_val[b * k + i] = all[i].first;
      out_id[b * k + i] = all[i].second;
    }
    out_n[b] = n;
  }
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
