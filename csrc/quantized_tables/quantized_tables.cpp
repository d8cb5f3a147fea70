// Inference-table kernels: catalog top-k that converts rows on the fly, and the pooled lookup.
//
// The top-k sweeps the catalog in tiles of kTile items for groups of up to kGroup users: task (group, range)
// converts each tile once and scores it for every user of the group, keeping one k-best heap per user and
// range; then each user's heaps over the ranges are merged. Ranges split the catalog so that a batch of one
// still uses every thread. An int8 score is scale * (q . codes) + bias * sum(q) + item_bias, the value of the
// dot product with the dequantized row up to float rounding, without ever writing the row back in float32.
#include "quantized_tables/quantized_tables.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "policy/heap.h"
#include "portable.h"

namespace recengine::quantized {
namespace {

using policy::heap_offer;
using policy::heap_threshold;
using policy::kNegInf;

constexpr int64_t kMinRange = 1024;           // fewest items one task of the top-k sweeps
constexpr int64_t kParallelLookup = 1 << 16;  // output floats below which the lookup runs on one thread

inline float bf16_to_float(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

constexpr int64_t kTile = 16;   // items per tile: one AVX-512 vector of float32 scores per user
constexpr int64_t kGroup = 32;  // users scored against each converted tile before the next one is built

// A tile holds the D values of kTile items column by column (tile[d * kTile + t] = item t's value d): int8 codes
// converted to float32 exactly (the per-row scale and bias are applied to the dot product afterwards), or the
// bfloat16 values widened. Each user's kTile scores are then D vector multiply-adds with no horizontal sum, and
// the conversion is paid once for a group of users instead of once per user.
__attribute__((always_inline)) inline void fill_tile_body(RowFormat fmt, const void* rows, int64_t D, int64_t j0,
                                                          int64_t nt, float* row, float* tile) {
  for (int64_t t = 0; t < kTile; ++t) {
    if (t >= nt) {
      for (int64_t d = 0; d < D; ++d) row[d] = 0.0f;
    } else if (fmt == RowFormat::kInt8) {  // each row converted with contiguous (vector) loads first
      const int8_t* c = static_cast<const int8_t*>(rows) + (j0 + t) * D;
      for (int64_t d = 0; d < D; ++d) row[d] = static_cast<float>(c[d]);
    } else {
      const uint16_t* r = static_cast<const uint16_t*>(rows) + (j0 + t) * D;
      for (int64_t d = 0; d < D; ++d) row[d] = bf16_to_float(r[d]);
    }
    for (int64_t d = 0; d < D; ++d) tile[d * kTile + t] = row[d];
  }
}
RECENGINE_VECTOR_CLONES(fill_tile)

// kTile float32 lanes as one value (GCC/Clang vector extension): the accumulators stay in registers (one zmm
// on AVX-512, two ymm on AVX2, four xmm otherwise) instead of an array the compiler reloads every step.
typedef float Lanes __attribute__((vector_size(kTile * sizeof(float))));

// acc[u * kTile + t] = Q[u] . tile column t, for the G users of a group: eight users at a time share each column
// load and keep eight independent accumulators in flight (a multiply-add's latency is several cycles).
__attribute__((always_inline)) inline void tile_dots_body(const float* Q, int64_t G, int64_t D, const float* tile,
                                                          float* acc) {
  constexpr int64_t kUsers = 8;
  int64_t u = 0;
  for (; u + kUsers <= G; u += kUsers) {
    const float* q = Q + u * D;
    Lanes a[kUsers] = {};
    for (int64_t d = 0; d < D; ++d) {
      Lanes col;
      std::memcpy(&col, tile + d * kTile, sizeof col);
      for (int64_t i = 0; i < kUsers; ++i) a[i] += q[i * D + d] * col;
    }
    std::memcpy(acc + u * kTile, a, sizeof a);
  }
  for (; u < G; ++u) {
    const float* q = Q + u * D;
    Lanes a = {};
    for (int64_t d = 0; d < D; ++d) {
      Lanes col;
      std::memcpy(&col, tile + d * kTile, sizeof col);
      a += q[d] * col;
    }
    std::memcpy(acc + u * kTile, &a, sizeof a);
  }
}
RECENGINE_VECTOR_CLONES(tile_dots)

// Score items [lo, hi) for the G users Q[0..G) (user u: exclusion list ex_b[u]..ex_e[u], heap hv/hid + u * stride * k
// with hn[u * stride] entries) and fold them into their heaps.
void sweep_range(RowFormat fmt, const float* Q, int64_t G, const void* rows, const float* scale_bias, int64_t D,
                 const float* bias, const int64_t* const* ex_b, const int64_t* const* ex_e, int64_t lo, int64_t hi,
                 int64_t k, float* hv, int64_t* hid, int64_t* hn, int64_t stride) {
  std::vector<float> tile(static_cast<size_t>(D * kTile)), row(static_cast<size_t>(D));
  float acc[kGroup * kTile];
  float qsum[kGroup];
  // each user's excluded ids inside [lo, hi), sorted, walked alongside the tiles
  std::vector<std::vector<int64_t>> ex(static_cast<size_t>(G));
  std::vector<size_t> next(static_cast<size_t>(G), 0);
  for (int64_t u = 0; u < G; ++u) {
    qsum[u] = 0.0f;
    for (int64_t d = 0; d < D; ++d) qsum[u] += Q[u * D + d];
    if (ex_b[u])
      for (const int64_t* p = ex_b[u]; p != ex_e[u]; ++p)
        if (*p >= lo && *p < hi) ex[u].push_back(*p);
    std::sort(ex[u].begin(), ex[u].end());
  }
  for (int64_t j0 = lo; j0 < hi; j0 += kTile) {
    const int64_t nt = std::min(kTile, hi - j0);
    fill_tile(fmt, rows, D, j0, nt, row.data(), tile.data());
    tile_dots(Q, G, D, tile.data(), acc);
    for (int64_t u = 0; u < G; ++u) {
      float* x = acc + u * kTile;
      for (int64_t t = 0; t < nt; ++t) {
        if (fmt == RowFormat::kInt8) x[t] = scale_bias[2 * (j0 + t)] * x[t] + scale_bias[2 * (j0 + t) + 1] * qsum[u];
        if (bias) x[t] += bias[j0 + t];
      }
      const std::vector<int64_t>& e = ex[u];
      size_t& p = next[u];
      for (; p < e.size() && e[p] < j0 + nt; ++p) x[e[p] - j0] = kNegInf;
      float* v = hv + u * stride * k;
      int64_t* id = hid + u * stride * k;
      int64_t n = hn[u * stride];
      float thr = heap_threshold(v, n, k);
      for (int64_t t = 0; t < nt; ++t)
        if (x[t] > thr) {
          n = heap_offer(v, id, nullptr, n, k, x[t], j0 + t, 0.0f);
          thr = heap_threshold(v, n, k);
        }
      hn[u * stride] = n;
    }
  }
}

}  // namespace

void catalog_topk(RowFormat fmt, const float* Q, const void* rows, const float* scale_bias, int64_t B, int64_t N,
                  int64_t D, const float* bias, const int64_t* ex_off, const int64_t* ex_ids, int64_t k, float* out_val,
                  int64_t* out_id, int64_t* out_n) {
  const int64_t threads = omp_get_max_threads();
  const int64_t groups = (B + kGroup - 1) / kGroup;
  // enough item ranges per group to occupy every thread, none shorter than kMinRange items
  const int64_t want = std::max<int64_t>(1, (threads + groups - 1) / groups);
  const int64_t S = std::max<int64_t>(1, std::min(want, N / kMinRange));
  const int64_t per = (N + S - 1) / S;
  // heaps: user b, range s at (b * S + s) * k
  std::vector<float> hv(static_cast<size_t>(B * S * k), kNegInf);
  std::vector<int64_t> hid(static_cast<size_t>(B * S * k), -1);
  std::vector<int64_t> hn(static_cast<size_t>(B * S), 0);
  // a single task runs on the calling thread: waking the team for it costs more than the sweep
#pragma omp parallel for schedule(dynamic, 1) if (groups * S > 1)
  for (int64_t task = 0; task < groups * S; ++task) {
    const int64_t g = task / S, s = task % S;
    const int64_t b0 = g * kGroup, G = std::min(kGroup, B - b0);
    const int64_t lo = s * per, hi = std::min(N, lo + per);
    if (lo >= hi) continue;
    const int64_t* ex_b[kGroup];
    const int64_t* ex_e[kGroup];
    for (int64_t u = 0; u < G; ++u) {
      ex_b[u] = ex_off ? ex_ids + ex_off[b0 + u] : nullptr;
      ex_e[u] = ex_off ? ex_ids + ex_off[b0 + u + 1] : nullptr;
    }
    // user b0 + u's heap over range s sits at slot (b0 + u) * S + s: a stride of S slots between the group's users
    const int64_t slot = b0 * S + s;
    sweep_range(fmt, Q + b0 * D, G, rows, scale_bias, D, bias, ex_b, ex_e, lo, hi, k, hv.data() + slot * k,
                hid.data() + slot * k, hn.data() + slot, S);
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
