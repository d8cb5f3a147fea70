// Exact top-k over the catalog through a bfloat16 prefilter (x86-64 with AVX512-BF16).
//
// The scores S = Q E^T are first computed with bf16 operands (VDPBF16PS: twice the multiply-adds of a
// float32 FMA per instruction, float32 accumulation). Each approximate score s~ comes with a proven bound:
//   |s - s~| <= c(D) * |q| * |e|      (bf16 rounding of q and e, float32 summation of both dot products;
//                                      Cauchy-Schwarz turns sum |q_d e_d| into the norms)
// so an item whose upper logit ((s~ + bound) + bias) * inv_temp cannot beat the row's k-th kept logit is
// skipped, and every other item is rescored exactly in float32 and offered to the row's k-best heap. The
// heap only ever holds float32 logits, so the result is the float32 top-k (same ties: lower id first).
// Per row, about k * log(N / k) items plus near-ties get rescored; the rest costs one bf16 pass.
//
// Layout: lanes run over 16 query rows (a row group of 64 rows is 4 vectors), items are broadcast from a
// bf16 copy of the item block in its own row-major layout, so converting E is a contiguous pass.
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "policy/heap.h"
#include "portable.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define RE_BF16_BUILD 1
#endif

namespace recengine::policy {

namespace {

// Whether the bf16 sweep may run where the CPU has AVX512-BF16; tests switch it off to cover both paths, and
// RECENGINE_PORTABLE starts it off.
std::atomic<bool> g_bf16_allowed{!recengine::portable_forced()};

bool cpu_has_bf16() {
#ifdef RE_BF16_BUILD
  static const bool has =
      __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512bf16");
  return has;
#else
  return false;
#endif
}

// float32 -> bfloat16 bits, round to nearest even; NaN stays a NaN (whatever it turns into, the bound
// becomes NaN or inf and the item is rescored exactly).
inline uint32_t bf16_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0u;
  return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}

// The bound's factor c(D): 2u + u^2 for the bf16 rounding of q and e (u = 2^-8), plus gamma_n = n 2^-24 /
// (1 - n 2^-24) for the float32 sums of the approximate (n = D + 1 terms, padded to pairs) and of the
// exact score (n = D), all times (1 + 2^-8) to cover the rounding of the norms and of the bound itself.
double bound_factor(int64_t D) {
  const double u = 1.0 / 256.0, eps = std::ldexp(1.0, -24);
  auto gamma = [&](double n) { return n * eps / (1.0 - n * eps); };
  return ((2 * u + u * u) + gamma(static_cast<double>(D + 2)) * (1 + u) * (1 + u) + gamma(static_cast<double>(D))) *
         (1.0 + u);
}
// Added to both norms: covers the flush of subnormal bf16 inputs and products to zero (<= 2^-126 each).
constexpr float kNormFloor = 0x1p-40f;

}  // namespace

bool topk_bf16_available() { return cpu_has_bf16() && g_bf16_allowed.load(); }
void set_topk_bf16(bool on) { g_bf16_allowed.store(on); }

#ifdef RE_BF16_BUILD
namespace {

constexpr int64_t kGroupRows = 64;  // 4 vectors of 16 rows
constexpr int64_t kTileItems = 6;   // items per micro-tile: 4 x 6 = 24 accumulators

struct RowGroup {
  const float* Q;       // the group's first row (float32, B x D row-major)
  int64_t r0, rows;     // batch rows r0 .. r0 + rows - 1 (rows <= 64)
  const uint32_t* qpk;  // (P, 64) bf16 pairs, pair-major, lanes = rows (zero-padded)
  const float* cq;      // (64,) c * (|q_r| + floor); 0 for padding rows
  float* thr;           // (64,) the rows' current k-th logit; +inf for padding rows
};

inline bool excluded(const int64_t* ex_off, const int64_t* ex_ids, int64_t row, int64_t item) {
  if (!ex_off) return false;
  for (int64_t i = ex_off[row]; i < ex_off[row + 1]; ++i)
    if (ex_ids[i] == item) return true;
  return false;
}

// The exact float32 score of one (row, item), offered to the row's heap.
inline void rescore(const RowGroup& g, int64_t lane, const float* e, int64_t item, int64_t D, const float* bias,
                    float inv_temp, const int64_t* ex_off, const int64_t* ex_ids, int64_t k, float* heap_val,
                    int64_t* heap_id, int64_t* heap_n) {
  const int64_t row = g.r0 + lane;
  if (excluded(ex_off, ex_ids, row, item)) return;
  const float* q = g.Q + lane * D;
  float s = 0.0f;
  for (int64_t d = 0; d < D; ++d) s += q[d] * e[d];
  const float v = (bias ? s + bias[item] : s) * inv_temp;
  float* hv = heap_val + row * k;
  int64_t* hi = heap_id + row * k;
  if (v > heap_threshold(hv, heap_n[row], k)) {
    heap_n[row] = heap_offer(hv, hi, nullptr, heap_n[row], k, v, item, 0.0f);
    g.thr[lane] = heap_threshold(hv, heap_n[row], k);
  }
}

// One micro-tile: the 64 rows of g against items j .. j + J - 1 of the block (epk: bf16 rows, P pairs each).
template <int J>
__attribute__((target("avx512f,avx512bw,avx512bf16"))) void micro_tile(
    const RowGroup& g, const uint32_t* epk, const float* en, int64_t P, int64_t j, int64_t item0, const float* E,
    int64_t D, const float* bias, float inv_temp, const int64_t* ex_off, const int64_t* ex_ids, int64_t k,
    float* heap_val, int64_t* heap_id, int64_t* heap_n) {
  __m512 acc[4][J];
  for (int v = 0; v < 4; ++v)
    for (int t = 0; t < J; ++t) acc[v][t] = _mm512_setzero_ps();
  for (int64_t p = 0; p < P; ++p) {
    __m512bh qv[4];
    for (int v = 0; v < 4; ++v) qv[v] = (__m512bh)_mm512_loadu_si512(g.qpk + p * kGroupRows + 16 * v);
    for (int t = 0; t < J; ++t) {
      const __m512bh eb = (__m512bh)_mm512_set1_epi32(static_cast<int>(epk[(j + t) * P + p]));
      for (int v = 0; v < 4; ++v) acc[v][t] = _mm512_dpbf16_ps(acc[v][t], qv[v], eb);
    }
  }
  for (int t = 0; t < J; ++t) {
    const int64_t item = item0 + j + t;
    const __m512 ne = _mm512_set1_ps(en[j + t]);
    const __m512 b = _mm512_set1_ps(bias ? bias[item] : 0.0f);
    const __m512 it = _mm512_set1_ps(inv_temp);
    for (int v = 0; v < 4; ++v) {
      // upper logit = ((s~ + c |q| |e|) + bias) * inv_temp, rounded monotonically like the exact logit
      __m512 ub = _mm512_fmadd_ps(_mm512_loadu_ps(g.cq + 16 * v), ne, acc[v][t]);
      ub = _mm512_mul_ps(_mm512_add_ps(ub, b), it);
      // not (ub <= thr), NaN included: those rows rescore this item
      __mmask16 m = _mm512_cmp_ps_mask(ub, _mm512_loadu_ps(g.thr + 16 * v), _CMP_NLE_UQ);
      while (m) {
        const int lane = __builtin_ctz(m);
        m &= m - 1;
        if (16 * v + lane >= g.rows) continue;
        rescore(g, 16 * v + lane, E + item * D, item, D, bias, inv_temp, ex_off, ex_ids, k, heap_val, heap_id, heap_n);
      }
    }
  }
}

// Item rows j0 .. j0 + nb - 1 -> bf16 rows of P pairs (the odd tail padded with 0) and their norms + floor.
__attribute__((target("avx512f,avx512bw,avx512bf16"))) void convert_block(const float* E, int64_t nb, int64_t D,
                                                                          int64_t P, uint32_t* epk, float* en) {
  for (int64_t j = 0; j < nb; ++j) {
    const float* e = E + j * D;
    uint32_t* out = epk + j * P;
    __m512 sq = _mm512_setzero_ps();
    for (int64_t d = 0; d < D; d += 32) {
      const int64_t left = D - d;
      const __mmask16 m_lo = left >= 16 ? 0xffff : static_cast<__mmask16>((1u << left) - 1);
      const __mmask16 m_hi = left >= 32 ? 0xffff : left <= 16 ? 0 : static_cast<__mmask16>((1u << (left - 16)) - 1);
      const __m512 lo = _mm512_maskz_loadu_ps(m_lo, e + d), hi = _mm512_maskz_loadu_ps(m_hi, e + d + 16);
      sq = _mm512_fmadd_ps(hi, hi, _mm512_fmadd_ps(lo, lo, sq));
      const __m512i packed = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);  // bf16 d .. d+31 in order = 16 pairs
      const int64_t pairs = std::min<int64_t>(16, P - d / 2);
      _mm512_mask_storeu_epi32(out + d / 2, static_cast<__mmask16>(pairs >= 16 ? 0xffff : (1u << pairs) - 1), packed);
    }
    alignas(64) float lanes[16];
    _mm512_store_ps(lanes, sq);  // (GCC 12's _mm512_reduce_add_ps trips -Wmaybe-uninitialized)
    float total = 0.0f;
    for (float x : lanes) total += x;
    en[j] = std::sqrt(total) + kNormFloor;
  }
}

using MicroTile = decltype(&micro_tile<1>);
constexpr MicroTile kMicroTiles[kTileItems + 1] = {nullptr,        &micro_tile<1>, &micro_tile<2>, &micro_tile<3>,
                                                   &micro_tile<4>, &micro_tile<5>, &micro_tile<6>};

}  // namespace

// Same contract as topk_sweep (heaps in, heaps out; unsorted). Work comes in tasks of (row groups, item range):
// a task converts each bf16 item block of its range once and runs all its row groups over it. With at least
// as many row groups as threads, a task is one thread's share of the groups over the whole catalog; with fewer
// (small batches on many cores), the catalog is also split, each split keeps heaps of its own (the first
// split the caller's), and the splits' heaps are merged at the end.
void topk_sweep_bf16(const float* Q, const float* E, int64_t B, int64_t N, int64_t D, const float* bias, float inv_temp,
                     const int64_t* ex_off, const int64_t* ex_ids, int64_t k, float* heap_val, int64_t* heap_id,
                     int64_t* heap_n) {
  if (B == 0 || N == 0) return;
  const int64_t P = (D + 1) / 2;
  const float c = static_cast<float>(bound_factor(D));
  const int64_t groups = (B + kGroupRows - 1) / kGroupRows;
  const int64_t threads = std::max(1, omp_get_max_threads());
  constexpr int64_t kMinSplitItems = 4096;  // below this a split's heaps and merge cost more than they save
  const int64_t splits =
      groups >= threads ? 1 : std::max<int64_t>(1, std::min((threads + groups - 1) / groups, N / kMinSplitItems));
  const int64_t tasks = splits == 1 ? std::min(threads, groups) : groups * splits;
  // heaps of splits 1.. (split 0 folds straight into the caller's)
  std::vector<float> more_val(static_cast<size_t>((splits - 1) * B * k), kNegInf);
  std::vector<int64_t> more_id(static_cast<size_t>((splits - 1) * B * k), -1);
  std::vector<int64_t> more_n(static_cast<size_t>((splits - 1) * B), 0);
  // a bf16 item block of ~256 KiB stays in L2 while every row group of the task passes over it
  const int64_t block_items = std::max<int64_t>(kTileItems, (int64_t{1} << 16) / std::max<int64_t>(1, P));
#pragma omp parallel num_threads(static_cast<int>(std::min(threads, tasks)))
  {
    std::vector<uint32_t> epk(static_cast<size_t>(block_items * P));
    std::vector<float> en(static_cast<size_t>(block_items));
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t split = splits == 1 ? 0 : task % splits;
      const int64_t g0 = splits == 1 ? groups * task / tasks : task / splits;
      const int64_t g1 = splits == 1 ? groups * (task + 1) / tasks : g0 + 1;
      const int64_t lo = N * split / splits, hi = N * (split + 1) / splits;
      float* hv = split == 0 ? heap_val : more_val.data() + (split - 1) * B * k;
      int64_t* hi_ = split == 0 ? heap_id : more_id.data() + (split - 1) * B * k;
      int64_t* hn = split == 0 ? heap_n : more_n.data() + (split - 1) * B;
      std::vector<RowGroup> mine;
      std::vector<uint32_t> qpk(static_cast<size_t>((g1 - g0) * P * kGroupRows), 0u);
      std::vector<float> cq(static_cast<size_t>((g1 - g0) * kGroupRows), 0.0f);
      std::vector<float> thr(static_cast<size_t>((g1 - g0) * kGroupRows), INFINITY);
      for (int64_t gi = g0; gi < g1; ++gi) {
        const int64_t r0 = gi * kGroupRows, rows = std::min(kGroupRows, B - r0), o = (gi - g0);
        uint32_t* gq = qpk.data() + o * P * kGroupRows;
        for (int64_t r = 0; r < rows; ++r) {
          const float* q = Q + (r0 + r) * D;
          float sq = 0.0f;
          for (int64_t d = 0; d < D; ++d) sq += q[d] * q[d];
          for (int64_t p = 0; p < P; ++p) {
            const uint32_t l = bf16_bits(q[2 * p]), h = 2 * p + 1 < D ? bf16_bits(q[2 * p + 1]) : 0u;
            gq[p * kGroupRows + r] = l | (h << 16);
          }
          cq[o * kGroupRows + r] = c * (std::sqrt(sq) + kNormFloor);
          thr[o * kGroupRows + r] = heap_threshold(hv + (r0 + r) * k, hn[r0 + r], k);
        }
        mine.push_back({Q + r0 * D, r0, rows, gq, cq.data() + o * kGroupRows, thr.data() + o * kGroupRows});
      }
      for (int64_t j0 = lo; j0 < hi; j0 += block_items) {
        const int64_t nb = std::min(block_items, hi - j0);
        convert_block(E + j0 * D, nb, D, P, epk.data(), en.data());
        for (const RowGroup& g : mine)
          for (int64_t j = 0; j < nb; j += kTileItems)
            kMicroTiles[std::min(kTileItems, nb - j)](g, epk.data(), en.data(), P, j, j0, E, D, bias, inv_temp, ex_off,
                                                      ex_ids, k, hv, hi_, hn);
      }
    }
    // the other splits' entries into the caller's heaps (ties still go to the lower id: heap_offer compares ids)
#pragma omp for schedule(static)
    for (int64_t row = 0; row < B; ++row)
      for (int64_t s = 1; s < splits; ++s) {
        const size_t base = static_cast<size_t>((s - 1) * B * k + row * k);
        for (int64_t i = 0; i < more_n[static_cast<size_t>((s - 1) * B + row)]; ++i)
          heap_n[row] = heap_offer(heap_val + row * k, heap_id + row * k, nullptr, heap_n[row], k, more_val[base + i],
                                   more_id[base + i], 0.0f);
      }
  }
}
#else
void topk_sweep_bf16(const float*, const float*, int64_t, int64_t, int64_t, const float*, float, const int64_t*,
                     const int64_t*, int64_t, float*, int64_t*, int64_t*) {}
#endif

}  // namespace recengine::policy
