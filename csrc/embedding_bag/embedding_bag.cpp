// Table-batched embedding bag kernels (CPU). See embedding_bag.h for the layout and the math.
//
// What bounds them: the forward reads N rows of D floats (random rows: DRAM latency/bandwidth) and
// writes B*T*D floats; the fused update reads grad_output once per occurrence and reads+writes each
// unique row (and its state) once. Both prefetch rows a few occurrences ahead to hide DRAM latency.
#include "embedding_bag/embedding_bag.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "portable.h"

// GCC 12's avx512fintrin.h trips -Wmaybe-uninitialized inside its own helpers (a false positive).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace recengine::embedding_bag {
namespace {

constexpr int64_t kPrefetch = 64;      // ids ahead (forward); tuned on W1 (8 x 1M x 64)
constexpr int64_t kPrefetchRows = 32;  // unique rows ahead (fused update); tuned on W1

inline void prefetch_row(const float* p, int64_t D, bool write) {
  const char* c = reinterpret_cast<const char*>(p);
  for (int64_t off = 0; off < D * 4; off += 64) {
    if (write)
      __builtin_prefetch(c + off, 1, 3);
    else
      __builtin_prefetch(c + off, 0, 3);
  }
}

// Threads worth starting for `work` units (ids): one below ~32k ids per thread, where waking a team
// costs more than it saves (and hurts most on a busy machine).
inline int threads_for(int64_t work) {
  constexpr int64_t kGrain = 32768;
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(omp_get_max_threads(), work / kGrain)));
}

// Lowers `bad` to `pos` (the first bad position wins, whatever the thread order).
inline void record_bad(std::atomic<int64_t>& bad, int64_t pos) {
  int64_t cur = bad.load(std::memory_order_relaxed);
  while ((cur < 0 || pos < cur) && !bad.compare_exchange_weak(cur, pos, std::memory_order_relaxed)) {
  }
}

// ------------------------------------------------------------------------------------- forward
// DC: D known at compile time (accumulator in registers), or 0 for any D.
template <typename I, int DC>
void forward_bags(const float* __restrict weights, int64_t R, int64_t D, const Bags& bags, int64_t j0, int64_t j1,
                  float* __restrict out, std::atomic<int64_t>& bad) {
  const I* ids = static_cast<const I*>(bags.ids);
  const int64_t B = bags.B, T = bags.T, N = bags.N;
  float acc_fixed[DC > 0 ? DC : 1];
  for (int64_t j = j0; j < j1; ++j) {
    const int64_t t = j / B, b = j % B;
    const int64_t base = bags.table_offsets[t];
    const uint64_t rows_t = static_cast<uint64_t>(bags.table_offsets[t + 1] - base);
    const int64_t s = bags.offsets[j], e = bags.offsets[j + 1];
    float* o = out + (b * T + t) * D;
    float* acc = DC > 0 ? acc_fixed : o;
    const int64_t dn = DC > 0 ? DC : D;
    for (int64_t d = 0; d < dn; ++d) acc[d] = 0.f;
    for (int64_t k = s; k < e; ++k) {
      if (k + kPrefetch < N && R > 0) {
        // the row kPrefetch ids ahead (its table may differ near a boundary: clamp, a prefetch is a hint)
        int64_t ahead = base + static_cast<int64_t>(ids[k + kPrefetch]);
        ahead = std::min<int64_t>(std::max<int64_t>(ahead, 0), R - 1);
        prefetch_row(weights + ahead * D, D, false);
      }
      const I id = ids[k];
      if (static_cast<uint64_t>(static_cast<int64_t>(id)) >= rows_t) {
        record_bad(bad, k);
        continue;
      }
      const float* __restrict row = weights + (base + static_cast<int64_t>(id)) * D;
      const float scale = bags.psw ? bags.psw[k] : 1.f;
      for (int64_t d = 0; d < dn; ++d) acc[d] += scale * row[d];
    }
    if (bags.mean && e > s) {
      const float inv = 1.f / static_cast<float>(e - s);
      for (int64_t d = 0; d < dn; ++d) acc[d] *= inv;
    }
    if (DC > 0) std::memcpy(o, acc, sizeof(float) * DC);
  }
}

// The same loop with the accumulator in AVX-512 registers (D a multiple of 16, at most 256): the rows
// stream through while 16 floats per register accumulate, no stack round trips.
#if defined(__x86_64__)
template <typename I, int DC>
__attribute__((target("avx512f"))) void forward_bags_avx512(const float* __restrict weights, int64_t R,
                                                            const Bags& bags, int64_t j0, int64_t j1,
                                                            float* __restrict out, std::atomic<int64_t>& bad) {
  constexpr int64_t D = DC;
  constexpr int V = DC / 16;
  const I* ids = static_cast<const I*>(bags.ids);
  const int64_t B = bags.B, T = bags.T, N = bags.N;
  for (int64_t j = j0; j < j1; ++j) {
    const int64_t t = j / B, b = j % B;
    const int64_t base = bags.table_offsets[t];
    const uint64_t rows_t = static_cast<uint64_t>(bags.table_offsets[t + 1] - base);
    const int64_t s = bags.offsets[j], e = bags.offsets[j + 1];
    __m512 acc[V];
    for (int v = 0; v < V; ++v) acc[v] = _mm512_setzero_ps();
    for (int64_t k = s; k < e; ++k) {
      if (k + kPrefetch < N && R > 0) {
        int64_t ahead = base + static_cast<int64_t>(ids[k + kPrefetch]);
        ahead = std::min<int64_t>(std::max<int64_t>(ahead, 0), R - 1);
        prefetch_row(weights + ahead * D, D, false);
      }
      const I id = ids[k];
      if (static_cast<uint64_t>(static_cast<int64_t>(id)) >= rows_t) {
        record_bad(bad, k);
        continue;
      }
      const float* row = weights + (base + static_cast<int64_t>(id)) * D;
      if (bags.psw) {
        const __m512 sc = _mm512_set1_ps(bags.psw[k]);
        for (int v = 0; v < V; ++v) acc[v] = _mm512_fmadd_ps(sc, _mm512_loadu_ps(row + 16 * v), acc[v]);
      } else {
        for (int v = 0; v < V; ++v) acc[v] = _mm512_add_ps(acc[v], _mm512_loadu_ps(row + 16 * v));
      }
    }
    if (bags.mean && e > s) {
      const __m512 inv = _mm512_set1_ps(1.f / static_cast<float>(e - s));
      for (int v = 0; v < V; ++v) acc[v] = _mm512_mul_ps(acc[v], inv);
    }
    float* o = out + (b * T + t) * D;
    for (int v = 0; v < V; ++v) _mm512_storeu_ps(o + 16 * v, acc[v]);
  }
}
template <typename I, int DC>
__attribute__((target("avx2,fma"))) void forward_bags_avx2(const float* __restrict weights, int64_t R, const Bags& bags,
                                                           int64_t j0, int64_t j1, float* __restrict out,
                                                           std::atomic<int64_t>& bad) {
  constexpr int64_t D = DC;
  constexpr int V = DC / 8;
  const I* ids = static_cast<const I*>(bags.ids);
  const int64_t B = bags.B, T = bags.T, N = bags.N;
  for (int64_t j = j0; j < j1; ++j) {
    const int64_t t = j / B, b = j % B;
    const int64_t base = bags.table_offsets[t];
    const uint64_t rows_t = static_cast<uint64_t>(bags.table_offsets[t + 1] - base);
    const int64_t s = bags.offsets[j], e = bags.offsets[j + 1];
    __m256 acc[V];
    for (int v = 0; v < V; ++v) acc[v] = _mm256_setzero_ps();
    for (int64_t k = s; k < e; ++k) {
      if (k + kPrefetch < N && R > 0) {
        int64_t ahead = base + static_cast<int64_t>(ids[k + kPrefetch]);
        ahead = std::min<int64_t>(std::max<int64_t>(ahead, 0), R - 1);
        prefetch_row(weights + ahead * D, D, false);
      }
      const I id = ids[k];
      if (static_cast<uint64_t>(static_cast<int64_t>(id)) >= rows_t) {
        record_bad(bad, k);
        continue;
      }
      const float* row = weights + (base + static_cast<int64_t>(id)) * D;
      if (bags.psw) {
        const __m256 sc = _mm256_set1_ps(bags.psw[k]);
        for (int v = 0; v < V; ++v) acc[v] = _mm256_fmadd_ps(sc, _mm256_loadu_ps(row + 8 * v), acc[v]);
      } else {
        for (int v = 0; v < V; ++v) acc[v] = _mm256_add_ps(acc[v], _mm256_loadu_ps(row + 8 * v));
      }
    }
    if (bags.mean && e > s) {
      const __m256 inv = _mm256_set1_ps(1.f / static_cast<float>(e - s));
      for (int v = 0; v < V; ++v) acc[v] = _mm256_mul_ps(acc[v], inv);
    }
    float* o = out + (b * T + t) * D;
    for (int v = 0; v < V; ++v) _mm256_storeu_ps(o + 8 * v, acc[v]);
  }
}
// Instruction set of the hot loops: 2 AVX-512, 1 AVX2+FMA, 0 portable C++ (what the CPU supports, unless
// lowered with set_isa, which the tests use to run every variant); RECENGINE_PORTABLE pins it to 0.
int g_isa = recengine::portable_forced()                                        ? 0
            : __builtin_cpu_supports("avx512f")                                 ? 2
            : (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) ? 1
                                                                                : 0;
const int kMaxIsa = g_isa;
#else
int g_isa = 0;
const int kMaxIsa = 0;
#endif

template <typename I>
int64_t forward_typed(const float* weights, int64_t R, int64_t D, const Bags& bags, float* out) {
  std::atomic<int64_t> bad{-1};
  // Chunks of bags handed out dynamically: a thread that loses its core on a busy machine does not
  // hold the others up at the end.
  constexpr int64_t kChunk = 128;
  const int64_t TB = bags.T * bags.B, chunks = (TB + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads_for(bags.N + TB))
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t j0 = c * kChunk, j1 = std::min(TB, j0 + kChunk);
#if defined(__x86_64__)
    if (g_isa == 2 && (D == 32 || D == 64 || D == 128)) {
      if (D == 32)
        forward_bags_avx512<I, 32>(weights, R, bags, j0, j1, out, bad);
      else if (D == 64)
        forward_bags_avx512<I, 64>(weights, R, bags, j0, j1, out, bad);
      else
        forward_bags_avx512<I, 128>(weights, R, bags, j0, j1, out, bad);
      continue;
    }
    if (g_isa == 1 && (D == 32 || D == 64 || D == 128)) {
      if (D == 32)
        forward_bags_avx2<I, 32>(weights, R, bags, j0, j1, out, bad);
      else if (D == 64)
        forward_bags_avx2<I, 64>(weights, R, bags, j0, j1, out, bad);
      else
        forward_bags_avx2<I, 128>(weights, R, bags, j0, j1, out, bad);
      continue;
    }
#endif
    switch (D) {
      case 32:
        forward_bags<I, 32>(weights, R, D, bags, j0, j1, out, bad);
        break;
      case 64:
        forward_bags<I, 64>(weights, R, D, bags, j0, j1, out, bad);
        break;
      case 128:
        forward_bags<I, 128>(weights, R, D, bags, j0, j1, out, bad);
        break;
      default:
        forward_bags<I, 0>(weights, R, D, bags, j0, j1, out, bad);
        break;
    }
  }
  return bad.load();
}

template <typename I>
int64_t find_bad_id_typed(const Bags& bags) {
  const I* ids = static_cast<const I*>(bags.ids);
  std::atomic<int64_t> bad{-1};
  const int64_t TB = bags.T * bags.B;
#pragma omp parallel for schedule(static) num_threads(threads_for(bags.N))
  for (int64_t t = 0; t < bags.T; ++t) {
    const uint64_t rows_t = static_cast<uint64_t>(bags.table_offsets[t + 1] - bags.table_offsets[t]);
    const int64_t s = bags.offsets[t * bags.B], e = bags.offsets[std::min((t + 1) * bags.B, TB)];
    for (int64_t k = s; k < e; ++k) {
      if (static_cast<uint64_t>(static_cast<int64_t>(ids[k])) >= rows_t) {
        record_bad(bad, k);
        break;
      }
    }
  }
  return bad.load();
}

// ------------------------------------------------------------------------------ per-sample weights
template <typename I>
void backward_psw_typed(const float* grad_output, const float* weights, int64_t D, const Bags& bags, float* grad_psw) {
  const I* ids = static_cast<const I*>(bags.ids);
  const int64_t B = bags.B, T = bags.T, TB = T * B;
#pragma omp parallel for schedule(dynamic, 64) num_threads(threads_for(bags.N + TB))
  for (int64_t j = 0; j < TB; ++j) {
    const int64_t t = j / B, b = j % B;
    const int64_t base = bags.table_offsets[t];
    const int64_t s = bags.offsets[j], e = bags.offsets[j + 1];
    const float* g = grad_output + (b * T + t) * D;
    const uint64_t rows_t = static_cast<uint64_t>(bags.table_offsets[t + 1] - base);
    const float inv = bags.mean && e > s ? 1.f / static_cast<float>(e - s) : 1.f;
    for (int64_t k = s; k < e; ++k) {
      if (static_cast<uint64_t>(static_cast<int64_t>(ids[k])) >= rows_t) {  // the caller checked; stay in bounds
        grad_psw[k] = 0.f;
        continue;
      }
      const float* row = weights + (base + static_cast<int64_t>(ids[k])) * D;
      float dot = 0.f;
      for (int64_t d = 0; d < D; ++d) dot += g[d] * row[d];
      grad_psw[k] = dot * inv;
    }
  }
}

// ---------------------------------------------------------------------------- fused update
// LSD radix sort of packed (key << 32 | position) by the key bits [32, 32 + key_bits); stable, so equal
// keys keep ascending positions. `a` holds the input; the result is in `a` or `tmp` (returned).
uint64_t* radix_sort_keys(uint64_t* a, uint64_t* tmp, int64_t n, int key_bits) {
  // digits of at most 11 bits, split evenly (20 bits: 2 x 10); all histograms in one read
  const int passes = (key_bits + 10) / 11;
  if (passes == 0) return a;
  const int bits = (key_bits + passes - 1) / passes;
  const uint64_t mask = (uint64_t(1) << bits) - 1;
  std::vector<int64_t> count(static_cast<size_t>(passes) << bits, 0);
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t key = a[i] >> 32;
    for (int p = 0; p < passes; ++p) ++count[(static_cast<size_t>(p) << bits) + ((key >> (p * bits)) & mask)];
  }
  for (int p = 0; p < passes; ++p) {
    int64_t* c = count.data() + (static_cast<size_t>(p) << bits);
    const int shift = 32 + p * bits;
    if (c[(a[0] >> shift) & mask] == n) continue;  // one bucket: already in order for this digit
    int64_t sum = 0;
    for (uint64_t d = 0; d <= mask; ++d) {
      const int64_t v = c[d];
      c[d] = sum;
      sum += v;
    }
    for (int64_t i = 0; i < n; ++i) tmp[c[(a[i] >> shift) & mask]++] = a[i];
    std::swap(a, tmp);
  }
  return a;
}

int bit_width(uint64_t v) {
  int w = 0;
  while (v) {
    ++w;
    v >>= 1;
  }
  return w;
}

template <int DC>
void update_segments(const float* __restrict grad_output, float* __restrict target, int64_t D, const Bags& bags,
                     const UpdateParams& p, float* __restrict state1, float* __restrict state2, const uint64_t* sorted,
                     const int64_t* seg_start, const int32_t* seg_table, int64_t U, const int32_t* bag_of) {
  const int64_t B = bags.B, T = bags.T;
  const int64_t dn = DC > 0 ? DC : D;
#pragma omp parallel num_threads(threads_for(bags.N))
  {
    std::vector<float> gbuf(DC > 0 ? 1 : D);
    float gfixed[DC > 0 ? DC : 1];
    float* g = DC > 0 ? gfixed : gbuf.data();
#pragma omp for schedule(dynamic, 256)
    for (int64_t u = 0; u < U; ++u) {
      if (u + kPrefetchRows < U) {
        const int64_t ua = u + kPrefetchRows;
        const int64_t ra = bags.table_offsets[seg_table[ua]] + static_cast<int64_t>(sorted[seg_start[ua]] >> 32);
        prefetch_row(target + ra * D, D, true);
        if (p.kind == Update::RowwiseAdagrad) __builtin_prefetch(state1 + ra, 1, 1);
      }
      const int64_t t = seg_table[u];
      const int64_t row = bags.table_offsets[t] + static_cast<int64_t>(sorted[seg_start[u]] >> 32);
      for (int64_t d = 0; d < dn; ++d) g[d] = 0.f;
      for (int64_t i = seg_start[u]; i < seg_start[u + 1]; ++i) {
        const int64_t low = static_cast<int64_t>(sorted[i] & 0xffffffffu);  // position k (psw) or bag j
        const int64_t j = bag_of ? bag_of[low] : low;
        float scale = bags.psw ? bags.psw[low] : 1.f;
        if (bags.mean) scale /= static_cast<float>(bags.offsets[j + 1] - bags.offsets[j]);
        const float* __restrict go = grad_output + ((j - t * B) * T + t) * D;
        for (int64_t d = 0; d < dn; ++d) g[d] += scale * go[d];
      }
      float* __restrict w = target + row * D;
      switch (p.kind) {
        case Update::DenseGrad:
          for (int64_t d = 0; d < dn; ++d) w[d] = g[d];
          break;
        case Update::SGD:
          for (int64_t d = 0; d < dn; ++d) w[d] -= p.lr * g[d];
          break;
        case Update::RowwiseAdagrad: {
          float sq = 0.f;
          for (int64_t d = 0; d < dn; ++d) sq += g[d] * g[d];
          const float s = state1[row] + sq / static_cast<float>(dn);
          state1[row] = s;
          const float mult = p.lr / (std::sqrt(s) + p.eps);
          for (int64_t d = 0; d < dn; ++d) w[d] -= mult * g[d];
          break;
        }
        case Update::Adam: {
          float* __restrict m = state1 + row * D;
          float* __restrict v = state2 + row * D;
          const float inv_bc1 = 1.f / p.bias_correction1, inv_bc2 = 1.f / p.bias_correction2;
          for (int64_t d = 0; d < dn; ++d) {
            const float md = p.beta1 * m[d] + (1.f - p.beta1) * g[d];
            const float vd = p.beta2 * v[d] + (1.f - p.beta2) * g[d] * g[d];
            m[d] = md;
            v[d] = vd;
            w[d] -= p.lr * (md * inv_bc1) / (std::sqrt(vd * inv_bc2) + p.eps);
          }
          break;
        }
      }
    }
  }
}

#if defined(__x86_64__)
// Vector traits of the fused update's SIMD body (update_segments_simd): the register type, its width in floats
// and each operation the body uses, as the one intrinsic of that instruction set. always_inline: a traits call
// that is not inlined into code compiled for its instruction set fails to build instead of becoming a call.
#define RECENGINE_VEC_OP(isa) __attribute__((always_inline, target(isa))) static inline
struct Avx512 {
  using Reg = __m512;
  static constexpr int kWidth = 16;
  RECENGINE_VEC_OP("avx512f") Reg zero() { return _mm512_setzero_ps(); }
  RECENGINE_VEC_OP("avx512f") Reg set1(float x) { return _mm512_set1_ps(x); }
  RECENGINE_VEC_OP("avx512f") Reg load(const float* p) { return _mm512_loadu_ps(p); }
  RECENGINE_VEC_OP("avx512f") void store(float* p, Reg a) { _mm512_storeu_ps(p, a); }
  RECENGINE_VEC_OP("avx512f") Reg fmadd(Reg a, Reg b, Reg c) { return _mm512_fmadd_ps(a, b, c); }
  RECENGINE_VEC_OP("avx512f") Reg add(Reg a, Reg b) { return _mm512_add_ps(a, b); }
  RECENGINE_VEC_OP("avx512f") Reg sub(Reg a, Reg b) { return _mm512_sub_ps(a, b); }
  RECENGINE_VEC_OP("avx512f") Reg mul(Reg a, Reg b) { return _mm512_mul_ps(a, b); }
  RECENGINE_VEC_OP("avx512f") Reg div(Reg a, Reg b) { return _mm512_div_ps(a, b); }
  RECENGINE_VEC_OP("avx512f") Reg sqrt(Reg a) { return _mm512_sqrt_ps(a); }
  RECENGINE_VEC_OP("avx512f") float sum(Reg a) { return _mm512_reduce_add_ps(a); }
};
struct Avx2 {
  using Reg = __m256;
  static constexpr int kWidth = 8;
  RECENGINE_VEC_OP("avx2,fma") Reg zero() { return _mm256_setzero_ps(); }
  RECENGINE_VEC_OP("avx2,fma") Reg set1(float x) { return _mm256_set1_ps(x); }
  RECENGINE_VEC_OP("avx2,fma") Reg load(const float* p) { return _mm256_loadu_ps(p); }
  RECENGINE_VEC_OP("avx2,fma") void store(float* p, Reg a) { _mm256_storeu_ps(p, a); }
  RECENGINE_VEC_OP("avx2,fma") Reg fmadd(Reg a, Reg b, Reg c) { return _mm256_fmadd_ps(a, b, c); }
  RECENGINE_VEC_OP("avx2,fma") Reg add(Reg a, Reg b) { return _mm256_add_ps(a, b); }
  RECENGINE_VEC_OP("avx2,fma") Reg sub(Reg a, Reg b) { return _mm256_sub_ps(a, b); }
  RECENGINE_VEC_OP("avx2,fma") Reg mul(Reg a, Reg b) { return _mm256_mul_ps(a, b); }
  RECENGINE_VEC_OP("avx2,fma") Reg div(Reg a, Reg b) { return _mm256_div_ps(a, b); }
  RECENGINE_VEC_OP("avx2,fma") Reg sqrt(Reg a) { return _mm256_sqrt_ps(a); }
  RECENGINE_VEC_OP("avx2,fma") float sum(Reg a) {
    const __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    const __m128 h = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(h, _mm_shuffle_ps(h, h, 1)));
  }
};
#undef RECENGINE_VEC_OP

// update_segments with the row gradient in vector registers of Vec (D = DC, a multiple of Vec::kWidth).
// Written once, compiled once per instruction set: each explicit instantiation below sits under the
// `#pragma GCC target` of its Vec, which GCC applies to the instantiated function and its OpenMP region.
template <typename Vec, int DC>
void update_segments_simd(const float* __restrict grad_output, float* __restrict target, const Bags& bags,
                          const UpdateParams& p, float* __restrict state1, float* __restrict state2,
                          const uint64_t* sorted, const int64_t* seg_start, const int32_t* seg_table, int64_t U,
                          const int32_t* bag_of) {
  using Reg = typename Vec::Reg;
  constexpr int64_t D = DC;
  constexpr int W = Vec::kWidth;
  constexpr int V = DC / W;
  const int64_t B = bags.B, T = bags.T;
#pragma omp parallel for schedule(dynamic, 256) num_threads(threads_for(bags.N))
  for (int64_t u = 0; u < U; ++u) {
    if (u + kPrefetchRows < U) {
      const int64_t ua = u + kPrefetchRows;
      const int64_t ra = bags.table_offsets[seg_table[ua]] + static_cast<int64_t>(sorted[seg_start[ua]] >> 32);
      prefetch_row(target + ra * D, D, true);
      if (p.kind == Update::RowwiseAdagrad) __builtin_prefetch(state1 + ra, 1, 3);
      if (p.kind == Update::Adam) {
        prefetch_row(state1 + ra * D, D, true);
        prefetch_row(state2 + ra * D, D, true);
      }
      // and the gradient row of its first occurrence
      const int64_t ta = seg_table[ua];
      const int64_t low = static_cast<int64_t>(sorted[seg_start[ua]] & 0xffffffffu);
      const int64_t ja = bag_of ? bag_of[low] : low;
      prefetch_row(grad_output + ((ja - ta * B) * T + ta) * D, D, false);
    }
    const int64_t t = seg_table[u];
    const int64_t row = bags.table_offsets[t] + static_cast<int64_t>(sorted[seg_start[u]] >> 32);
    Reg g[V];
    for (int v = 0; v < V; ++v) g[v] = Vec::zero();
    for (int64_t i = seg_start[u]; i < seg_start[u + 1]; ++i) {
      const int64_t low = static_cast<int64_t>(sorted[i] & 0xffffffffu);  // position k (psw) or bag j
      const int64_t j = bag_of ? bag_of[low] : low;
      float scale = bags.psw ? bags.psw[low] : 1.f;
      if (bags.mean) scale /= static_cast<float>(bags.offsets[j + 1] - bags.offsets[j]);
      const float* go = grad_output + ((j - t * B) * T + t) * D;
      const Reg sc = Vec::set1(scale);
      for (int v = 0; v < V; ++v) g[v] = Vec::fmadd(sc, Vec::load(go + W * v), g[v]);
    }
    float* w = target + row * D;
    switch (p.kind) {
      case Update::DenseGrad:
        for (int v = 0; v < V; ++v) Vec::store(w + W * v, g[v]);
        break;
      case Update::SGD: {
        const Reg nlr = Vec::set1(-p.lr);
        for (int v = 0; v < V; ++v) Vec::store(w + W * v, Vec::fmadd(nlr, g[v], Vec::load(w + W * v)));
        break;
      }
      case Update::RowwiseAdagrad: {
        Reg sq = Vec::zero();
        for (int v = 0; v < V; ++v) sq = Vec::fmadd(g[v], g[v], sq);
        const float s = state1[row] + Vec::sum(sq) / static_cast<float>(D);
        state1[row] = s;
        const Reg nm = Vec::set1(-p.lr / (std::sqrt(s) + p.eps));
        for (int v = 0; v < V; ++v) Vec::store(w + W * v, Vec::fmadd(nm, g[v], Vec::load(w + W * v)));
        break;
      }
      case Update::Adam: {
        float* m = state1 + row * D;
        float* vv = state2 + row * D;
        const Reg b1 = Vec::set1(p.beta1), c1 = Vec::set1(1.f - p.beta1);
        const Reg b2 = Vec::set1(p.beta2), c2 = Vec::set1(1.f - p.beta2);
        const Reg ib1 = Vec::set1(1.f / p.bias_correction1), ib2 = Vec::set1(1.f / p.bias_correction2);
        const Reg lr = Vec::set1(p.lr), eps = Vec::set1(p.eps);
        for (int v = 0; v < V; ++v) {
          const Reg md = Vec::fmadd(b1, Vec::load(m + W * v), Vec::mul(c1, g[v]));
          const Reg vd = Vec::fmadd(b2, Vec::load(vv + W * v), Vec::mul(c2, Vec::mul(g[v], g[v])));
          Vec::store(m + W * v, md);
          Vec::store(vv + W * v, vd);
          const Reg den = Vec::add(Vec::sqrt(Vec::mul(vd, ib2)), eps);
          const Reg step = Vec::div(Vec::mul(lr, Vec::mul(md, ib1)), den);
          Vec::store(w + W * v, Vec::sub(Vec::load(w + W * v), step));
        }
        break;
      }
    }
  }
}

#define RECENGINE_UPDATE_SEGMENTS_SIMD(Vec, DC)                                                        \
  template void update_segments_simd<Vec, DC>(                                                         \
      const float* __restrict, float* __restrict, const Bags&, const UpdateParams&, float* __restrict, \
      float* __restrict, const uint64_t*, const int64_t*, const int32_t*, int64_t, const int32_t*)
#pragma GCC push_options
#pragma GCC target("avx512f")
RECENGINE_UPDATE_SEGMENTS_SIMD(Avx512, 32);
RECENGINE_UPDATE_SEGMENTS_SIMD(Avx512, 64);
RECENGINE_UPDATE_SEGMENTS_SIMD(Avx512, 128);
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx2,fma")
RECENGINE_UPDATE_SEGMENTS_SIMD(Avx2, 32);
RECENGINE_UPDATE_SEGMENTS_SIMD(Avx2, 64);
RECENGINE_UPDATE_SEGMENTS_SIMD(Avx2, 128);
#pragma GCC pop_options
#undef RECENGINE_UPDATE_SEGMENTS_SIMD

// The SIMD update for D = 32, 64 or 128 in Vec's registers; false (nothing done) for another D.
template <typename Vec>
bool dispatch_update_segments_simd(int64_t D, const float* grad_output, float* target, const Bags& bags,
                                   const UpdateParams& p, float* state1, float* state2, const uint64_t* sorted,
                                   const int64_t* seg_start, const int32_t* seg_table, int64_t U,
                                   const int32_t* bag_of) {
  switch (D) {
    case 32:
      update_segments_simd<Vec, 32>(grad_output, target, bags, p, state1, state2, sorted, seg_start, seg_table, U,
                                    bag_of);
      return true;
    case 64:
      update_segments_simd<Vec, 64>(grad_output, target, bags, p, state1, state2, sorted, seg_start, seg_table, U,
                                    bag_of);
      return true;
    case 128:
      update_segments_simd<Vec, 128>(grad_output, target, bags, p, state1, state2, sorted, seg_start, seg_table, U,
                                     bag_of);
      return true;
    default:
      return false;
  }
}
#endif

// Scratch memory of the fused update, kept per calling thread between calls: W1 needs ~20 MB, and
// fresh allocations would page-fault every call.
struct Workspace {
  std::unique_ptr<uint64_t[]> keys, tmp;
  std::unique_ptr<int32_t[]> bag_of, seg_table;
  std::unique_ptr<int64_t[]> seg_start;
  int64_t capacity = 0;
  void reserve(int64_t n) {
    if (n <= capacity) return;
    keys.reset(new uint64_t[n]);
    tmp.reset(new uint64_t[n]);
    bag_of.reset(new int32_t[n]);
    seg_table.reset(new int32_t[n]);
    seg_start.reset(new int64_t[n + 1]);
    capacity = n;
  }
};

template <typename I>
int64_t aggregate_update_typed(const float* grad_output, float* target, int64_t R, int64_t D, const Bags& bags,
                               const UpdateParams& params, float* state1, float* state2) {
  const I* ids = static_cast<const I*>(bags.ids);
  const int64_t T = bags.T, B = bags.B, N = bags.N;
  if (N == 0) return -1;
  thread_local Workspace ws;
  ws.reserve(N);
  // raw pointers: inside the parallel regions `ws` would name each worker's own (empty) workspace
  uint64_t* keys = ws.keys.get();
  uint64_t* tmp = ws.tmp.get();
  int32_t* bag_of = bags.psw ? ws.bag_of.get() : nullptr;
  // Each table's occurrences are contiguous (table-major bags): sort each table's (id, position) keys
  // by id (stable, so a row's occurrences stay in position order: a deterministic sum).
  std::vector<int64_t> segs_of(T, 0);
  std::atomic<int64_t> bad{-1};
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads_for(N))
  for (int64_t t = 0; t < T; ++t) {
    const int64_t s = bags.offsets[t * B], e = bags.offsets[(t + 1) * B];
    const uint64_t rows_t = static_cast<uint64_t>(bags.table_offsets[t + 1] - bags.table_offsets[t]);
    bool ok = true;
    // key = id << 32 | (position k with per-sample weights, else bag j: the update then needs no lookup)
    for (int64_t j = t * B; j < (t + 1) * B && ok; ++j) {
      for (int64_t k = bags.offsets[j]; k < bags.offsets[j + 1]; ++k) {
        const uint64_t id = static_cast<uint64_t>(static_cast<int64_t>(ids[k]));
        if (id >= rows_t) {
          record_bad(bad, k);
          ok = false;
          break;
        }
        if (bag_of) bag_of[k] = static_cast<int32_t>(j);
        keys[k] = (id << 32) | static_cast<uint64_t>(bag_of ? k : j);
      }
    }
    if (!ok || e == s) continue;
    uint64_t* res = radix_sort_keys(keys + s, tmp + s, e - s, bit_width(rows_t - 1));
    if (res != keys + s) std::memcpy(keys + s, res, sizeof(uint64_t) * (e - s));
    int64_t segs = 1;
    for (int64_t i = s + 1; i < e; ++i) segs += (keys[i] >> 32) != (keys[i - 1] >> 32);
    segs_of[t] = segs;
  }
  if (bad.load() >= 0) return bad.load();
  // The start of each unique row's run in the sorted keys, and its table.
  std::vector<int64_t> first_seg(T + 1, 0);
  for (int64_t t = 0; t < T; ++t) first_seg[t + 1] = first_seg[t] + segs_of[t];
  const int64_t U = first_seg[T];
  int64_t* seg_start = ws.seg_start.get();
  int32_t* seg_table = ws.seg_table.get();
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads_for(N))
  for (int64_t t = 0; t < T; ++t) {
    const int64_t s = bags.offsets[t * B], e = bags.offsets[(t + 1) * B];
    int64_t u = first_seg[t];
    for (int64_t i = s; i < e; ++i) {
      if (i == s || (keys[i] >> 32) != (keys[i - 1] >> 32)) {
        seg_start[u] = i;
        seg_table[u] = static_cast<int32_t>(t);
        ++u;
      }
    }
  }
  seg_start[U] = N;
#if defined(__x86_64__)
  if (g_isa == 2 && dispatch_update_segments_simd<Avx512>(D, grad_output, target, bags, params, state1, state2, keys,
                                                          seg_start, seg_table, U, bag_of))
    return -1;
  if (g_isa == 1 && dispatch_update_segments_simd<Avx2>(D, grad_output, target, bags, params, state1, state2, keys,
                                                        seg_start, seg_table, U, bag_of))
    return -1;
#endif
  switch (D) {
    case 32:
      update_segments<32>(grad_output, target, D, bags, params, state1, state2, keys, seg_start, seg_table, U, bag_of);
      break;
    case 64:
      update_segments<64>(grad_output, target, D, bags, params, state1, state2, keys, seg_start, seg_table, U, bag_of);
      break;
    case 128:
      update_segments<128>(grad_output, target, D, bags, params, state1, state2, keys, seg_start, seg_table, U, bag_of);
      break;
    default:
      update_segments<0>(grad_output, target, D, bags, params, state1, state2, keys, seg_start, seg_table, U, bag_of);
      break;
  }
  return -1;
}

}  // namespace

// ------------------------------------------------------------------------------------ public
std::string check_layout(const Bags& bags, int64_t R) {
  if (bags.T < 0 || bags.B < 0) return "negative number of tables or batch size";
  for (int64_t t = 0; t < bags.T; ++t)
    if (bags.table_offsets[t + 1] < bags.table_offsets[t]) return "table_offsets: must be nondecreasing";
  if (bags.table_offsets[0] < 0 || bags.table_offsets[bags.T] > R)
    return "table_offsets: must lie within [0, " + std::to_string(R) + "] (weights rows)";
  const int64_t TB = bags.T * bags.B;
  if (bags.offsets[0] != 0) return "offsets: offsets[0] must be 0, got " + std::to_string(bags.offsets[0]);
  for (int64_t j = 0; j < TB; ++j)
    if (bags.offsets[j + 1] < bags.offsets[j])
      return "offsets: must be nondecreasing, but offsets[" + std::to_string(j + 1) +
             "] = " + std::to_string(bags.offsets[j + 1]) + " < offsets[" + std::to_string(j) +
             "] = " + std::to_string(bags.offsets[j]);
  if (bags.offsets[TB] != bags.N)
    return "offsets: offsets[-1] must equal len(ids) = " + std::to_string(bags.N) + ", got " +
           std::to_string(bags.offsets[TB]);
  if (bags.N >= (int64_t(1) << 31)) return "at most 2**31 - 1 ids per call";
  if (TB >= (int64_t(1) << 31)) return "at most 2**31 - 1 bags per call";
  for (int64_t t = 0; t < bags.T; ++t)
    if (bags.table_offsets[t + 1] - bags.table_offsets[t] > (int64_t(1) << 32)) return "at most 2**32 rows per table";
  return "";
}

int set_isa(int level) {
  if (level >= 0) g_isa = std::min(level, kMaxIsa);
  return g_isa;
}

int64_t find_bad_id(const Bags& bags) {
  return bags.ids_int64 ? find_bad_id_typed<int64_t>(bags) : find_bad_id_typed<int32_t>(bags);
}

int64_t forward(const float* weights, int64_t R, int64_t D, const Bags& bags, float* out) {
  return bags.ids_int64 ? forward_typed<int64_t>(weights, R, D, bags, out)
                        : forward_typed<int32_t>(weights, R, D, bags, out);
}

void backward_psw(const float* grad_output, const float* weights, int64_t D, const Bags& bags, float* grad_psw) {
  if (bags.ids_int64)
    backward_psw_typed<int64_t>(grad_output, weights, D, bags, grad_psw);
  else
    backward_psw_typed<int32_t>(grad_output, weights, D, bags, grad_psw);
}

int64_t aggregate_update(const float* grad_output, float* target, int64_t R, int64_t D, const Bags& bags,
                         const UpdateParams& params, float* state1, float* state2) {
  return bags.ids_int64 ? aggregate_update_typed<int64_t>(grad_output, target, R, D, bags, params, state1, state2)
                        : aggregate_update_typed<int32_t>(grad_output, target, R, D, bags, params, state1, state2);
}

}  // namespace recengine::embedding_bag
