// Catalog softmax-policy kernels: the catalog walked in tiles, each folded into per-row state at once.
//
// A tile holds the raw scores S = Q[r0:r0+R] @ E[j0:j0+nb].T of R rows and nb items. The per-row
// bodies below turn a tile row into the logits x = (S + bias) * inv_temp with the row's excluded items
// at -inf, and fold it into running state: a k-best heap (top-k), an online logsumexp (max m, sum s of
// exp(x - m)), the Gumbel-top-k heap, or the cross-entropy gradient. Nothing of size B x N exists.
//
// The *_sweep functions (what recengine.ops uses) run the whole catalog in one OpenMP region: each
// thread computes its own L2-sized tiles with a BLAS GEMM and folds them while they are in cache.
#include <dlfcn.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define RE_AVX512_BUILD 1
#endif

#include "policy/catalog_blocks.h"
#include "policy/heap.h"
#include "portable.h"

namespace recengine::policy {

namespace {

// Bound on the Gumbel noise the hash can produce (-log(-log(1 - 2^-24)) = 16.636), with slack for the
// polynomial log: an item whose logit + this bound cannot beat the current k-th key needs no noise.
constexpr float kGumbelMax = 16.75f;

#define RE_INLINE inline __attribute__((always_inline))

// Inner loops run over 16 floats at a time: one AVX-512 register, two AVX2 ones.
constexpr int64_t kLanes = 16;

RE_INLINE float bits_to_float(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}
RE_INLINE uint32_t float_to_bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

// exp(x) in float32 to ~2 ulp, branch-free so loops over it vectorise (libm's expf does not).
RE_INLINE float fast_exp(float x) {
  x = x > -87.0f ? x : -87.0f;  // written so NaN maps to -87 (no UB in the int conversion below)
  x = x < 88.0f ? x : 88.0f;
  const float t = x * 1.44269504088896341f;
  const float n = (t + 12582912.0f) - 12582912.0f;  // round to nearest (1.5 * 2^23 trick)
  float r = x - n * 0.693145751953125f;             // ln2 split in hi + lo for an exact reduction
  r = r - n * 1.428606765330187045e-06f;
  // exp(r) on |r| <= 0.35: degree-6 Taylor/minimax (Cephes expf coefficients)
  float p = 1.9875691500E-4f;
  p = p * r + 1.3981999507E-3f;
  p = p * r + 8.3334519073E-3f;
  p = p * r + 4.1665795894E-2f;
  p = p * r + 1.6666665459E-1f;
  p = p * r + 5.0000001201E-1f;
  p = p * r * r + r + 1.0f;
  const int32_t e = static_cast<int32_t>(n) + 127;
  return p * bits_to_float(static_cast<uint32_t>(e) << 23);
}

// log(x) for finite x > 0 (normal numbers), float32 to ~2 ulp, branch-free (Cephes logf polynomial).
RE_INLINE float fast_log(float x) {
  const uint32_t b = float_to_bits(x);
  int32_t e = static_cast<int32_t>((b >> 23) & 0xff) - 126;  // x = m * 2^e, m in [0.5, 1)
  float m = bits_to_float((b & 0x007fffffu) | 0x3f000000u);
  const bool small = m < 0.707106781186547524f;
  e -= small ? 1 : 0;
  m = small ? (m + m - 1.0f) : (m - 1.0f);
  const float z = m * m;
  float y = 7.0376836292E-2f;
  y = y * m - 1.1514610310E-1f;
  y = y * m + 1.1676998740E-1f;
  y = y * m - 1.2420140846E-1f;
  y = y * m + 1.4249322787E-1f;
  y = y * m - 1.6668057665E-1f;
  y = y * m + 2.0000714765E-1f;
  y = y * m - 2.4999993993E-1f;
  y = y * m + 3.3333331174E-1f;
  y = y * m * z;
  const float fe = static_cast<float>(e);
  y += -2.12194440E-4f * fe;
  y += -0.5f * z;
  return (m + y) + 0.693359375f * fe;
}

// The counter-based hash, identical to recengine/reference/policy.py and the Triton kernel.
RE_INLINE uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

// Standard Gumbel noise for (seed key, row key, item): u = ((h >> 9) + 0.5) / 2^23, g = -log(-log(u)).
RE_INLINE float gumbel(uint32_t skey, uint32_t rkey, uint32_t item) {
  const uint32_t h = mix32(mix32(item ^ skey) ^ rkey);
  const float u = (static_cast<float>(h >> 9) + 0.5f) * (1.0f / 8388608.0f);
  return -fast_log(-fast_log(u));
}

// Raw scores -> logits in place: (s + bias) * inv_temp, then the row's excluded items -> -inf.
RE_INLINE void make_logits(float* x, int64_t nb, int64_t item0, const float* bias, float inv_temp,
                           const int64_t* ex_begin, const int64_t* ex_end) {
  if (bias) {
    const float* b = bias + item0;
    for (int64_t j = 0; j < nb; ++j) x[j] = (x[j] + b[j]) * inv_temp;
  } else if (inv_temp != 1.0f) {
    for (int64_t j = 0; j < nb; ++j) x[j] *= inv_temp;
  }
  for (const int64_t* p = ex_begin; p != ex_end; ++p) {
    const int64_t j = *p - item0;
    if (j >= 0 && j < nb) x[j] = kNegInf;
  }
}

// ---- per-row bodies (vectorised with runtime dispatch; everything above is inlined into each clone)
// The logits are formed on the fly ((s + bias) * inv_temp, excluded -> -inf first), so the tile is only
// read once. A chunk of 256 items is looked at closer only when its maximum beats the row's k-th; the
// maximum runs in 16 vertical lanes, which vectorises (a per-16 "any" does not, with GCC).
RE_INLINE float logit_at(const float* x, const float* b, float inv_temp, int64_t j) {
  return (b ? x[j] + b[j] : x[j]) * inv_temp;
}

__attribute__((always_inline)) inline void topk_row_body(float* x, int64_t nb, int64_t item0, const float* bias,
                                                         float inv_temp, const int64_t* ex_b, const int64_t* ex_e,
                                                         int64_t k, float* hv, int64_t* hi, int64_t* hn) {
  constexpr int64_t kChunk = 16 * kLanes;
  make_logits(x, nb, item0, nullptr, 1.0f, ex_b, ex_e);  // only the exclusions
  const float* b = bias ? bias + item0 : nullptr;
  int64_t n = *hn;
  float thr = heap_threshold(hv, n, k);
  int64_t j = 0;
  for (; j < nb; j += kChunk) {
    const int64_t end = std::min(nb, j + kChunk);
    if (end - j == kChunk) {
      float lane_m[kLanes];
      for (int64_t l = 0; l < kLanes; ++l) lane_m[l] = kNegInf;
      if (b) {
        for (int64_t i = j; i < end; i += kLanes)
          for (int64_t l = 0; l < kLanes; ++l) {
            const float v = (x[i + l] + b[i + l]) * inv_temp;
            lane_m[l] = v > lane_m[l] ? v : lane_m[l];
          }
      } else {
        for (int64_t i = j; i < end; i += kLanes)
          for (int64_t l = 0; l < kLanes; ++l) {
            const float v = x[i + l] * inv_temp;
            lane_m[l] = v > lane_m[l] ? v : lane_m[l];
          }
      }
      float mx = kNegInf;
      for (int64_t l = 0; l < kLanes; ++l) mx = lane_m[l] > mx ? lane_m[l] : mx;
      if (!(mx > thr)) continue;
    }
    for (int64_t i = j; i < end; ++i) {
      const float v = logit_at(x, b, inv_temp, i);
      if (v > thr) {
        n = heap_offer(hv, hi, nullptr, n, k, v, item0 + i, 0.0f);
        thr = heap_threshold(hv, n, k);
      }
    }
  }
  *hn = n;
}
RECENGINE_VECTOR_CLONES(topk_row)

// Online logsumexp of one row of logits: (m, s) with lse = m + log(s). The max and the sum run in
// kLanes independent lanes so they vectorise without reassociating float additions.
RE_INLINE void lse_update(const float* x, int64_t nb, float* m_io, float* s_io) {
  float lane_m[kLanes];
  for (int64_t l = 0; l < kLanes; ++l) lane_m[l] = kNegInf;
  int64_t j = 0;
  for (; j + kLanes <= nb; j += kLanes)
    for (int64_t l = 0; l < kLanes; ++l) lane_m[l] = x[j + l] > lane_m[l] ? x[j + l] : lane_m[l];
  float mx = kNegInf;
  for (; j < nb; ++j) mx = x[j] > mx ? x[j] : mx;
  for (int64_t l = 0; l < kLanes; ++l) mx = lane_m[l] > mx ? lane_m[l] : mx;
  if (mx == kNegInf) return;  // every item of the block excluded
  const float m_new = std::max(*m_io, mx);
  float lane_s[kLanes];
  for (int64_t l = 0; l < kLanes; ++l) lane_s[l] = 0.0f;
  for (j = 0; j + kLanes <= nb; j += kLanes)
    for (int64_t l = 0; l < kLanes; ++l) lane_s[l] += fast_exp(x[j + l] - m_new);  // exp(-inf) ~ 1e-38
  float s = 0.0f;
  for (; j < nb; ++j) s += fast_exp(x[j] - m_new);
  for (int64_t l = 0; l < kLanes; ++l) s += lane_s[l];
  *s_io = (*m_io == kNegInf ? 0.0f : *s_io * fast_exp(*m_io - m_new)) + s;
  *m_io = m_new;
}

__attribute__((always_inline)) inline void lse_row_body(float* x, int64_t nb, int64_t item0, const float* bias,
                                                        float inv_temp, const int64_t* ex_b, const int64_t* ex_e,
                                                        float* m, float* s, int64_t target, float* x_target) {
  make_logits(x, nb, item0, bias, inv_temp, ex_b, ex_e);
  lse_update(x, nb, m, s);
  if (x_target && target >= item0 && target < item0 + nb) *x_target = x[target - item0];
}
RECENGINE_VECTOR_CLONES(lse_row)

// Gumbel-top-k with the online logsumexp. The key of item j is x_j + g_j, g_j = -log(e_j), e_j = -log(u_j).
// Most items cannot enter the heap, and two cheap exact filters say so before any log:
//  1. x_j + max(g) <= thr (per 16 items): even the largest noise the hash can make does not reach the
//     k-th key thr;
//  2. p_j <= (1 - u_j) * c with p_j = exp(x_j - m), c = exp(thr - m): since e_j >= 1 - u_j, this implies
//     x_j + g_j <= thr. After the heap fills, about k items per row pass it in all.
// The survivors get the exact key and the exact comparison, so the result is that of the plain loop.
__attribute__((always_inline)) inline void sample_row_body(float* x, int64_t nb, int64_t item0, const float* bias,
                                                           float inv_temp, const int64_t* ex_b, const int64_t* ex_e,
                                                           uint32_t skey, uint32_t rkey, int64_t k, float* hkey,
                                                           int64_t* hi, float* hx, int64_t* hn, float* m, float* s) {
  make_logits(x, nb, item0, bias, inv_temp, ex_b, ex_e);
  lse_update(x, nb, m, s);
  const float m_row = *m;  // the running max, including this block
  int64_t n = *hn;
  float thr = heap_threshold(hkey, n, k);
  // c = exp(thr - m), or 0 (filter 2 off) where it would lose precision; 1 + 2^-12 absorbs rounding
  auto filter_scale = [&](float t) {
    const float d = t - m_row;
    return (n < k || !(d > -80.0f)) ? 0.0f : fast_exp(std::min(d, 80.0f)) * (1.0f / 1.000244140625f);
  };
  float c = filter_scale(thr);
  float key[kLanes];
  int64_t j = 0;
  for (; j + kLanes <= nb; j += kLanes) {
    int any = 0;
    for (int64_t l = 0; l < kLanes; ++l) any |= x[j + l] + kGumbelMax > thr;
    if (!any) continue;
    any = 0;
    for (int64_t l = 0; l < kLanes; ++l) {
      const uint32_t h = mix32(mix32(static_cast<uint32_t>(item0 + j + l) ^ skey) ^ rkey);
      const float u = (static_cast<float>(h >> 9) + 0.5f) * (1.0f / 8388608.0f);
      const float p = fast_exp(x[j + l] - m_row);
      any |= p > (1.0f - u) * c;
    }
    if (!any) continue;
    for (int64_t l = 0; l < kLanes; ++l) key[l] = x[j + l] + gumbel(skey, rkey, static_cast<uint32_t>(item0 + j + l));
    for (int64_t l = 0; l < kLanes; ++l) {
      if (key[l] > thr && x[j + l] != kNegInf) {
        n = heap_offer(hkey, hi, hx, n, k, key[l], item0 + j + l, x[j + l]);
        thr = heap_threshold(hkey, n, k);
        c = filter_scale(thr);
      }
    }
  }
  for (; j < nb; ++j) {
    if (x[j] == kNegInf || !(x[j] + kGumbelMax > thr)) continue;
    const float kj = x[j] + gumbel(skey, rkey, static_cast<uint32_t>(item0 + j));
    if (kj > thr) {
      n = heap_offer(hkey, hi, hx, n, k, kj, item0 + j, x[j]);
      thr = heap_threshold(hkey, n, k);
    }
  }
  *hn = n;
}
RECENGINE_VECTOR_CLONES(sample_row)

// Tile -> the gradient w.r.t. the raw scores: g = softmax * p_scale - onehot(target) * t_scale, where the
// caller folds d loss_row (both scales), d lse_row (p_scale only) and 1 / temperature into the scales.
__attribute__((always_inline)) inline void ce_grad_row_body(float* x, int64_t nb, int64_t item0, const float* bias,
                                                            float inv_temp, const int64_t* ex_b, const int64_t* ex_e,
                                                            float lse, int64_t target, float p_scale, float t_scale) {
  make_logits(x, nb, item0, bias, inv_temp, ex_b, ex_e);
  for (int64_t j = 0; j < nb; ++j) x[j] = fast_exp(x[j] - lse) * p_scale;
  for (const int64_t* p = ex_b; p != ex_e; ++p) {  // exactly zero, not exp(-87)
    const int64_t j = *p - item0;
    if (j >= 0 && j < nb) x[j] = 0.0f;
  }
  if (target >= item0 && target < item0 + nb) x[target - item0] -= t_scale;
}
RECENGINE_VECTOR_CLONES(ce_grad_row)

// Sort a heap's entries best first: value descending, id ascending.
void heap_sort_out(float* v, int64_t* id, float* aux, int64_t n) {
  // selection by repeatedly popping the worst entry to the back
  for (int64_t end = n; end > 1; --end) {
    std::swap(v[0], v[end - 1]);
    std::swap(id[0], id[end - 1]);
    if (aux) std::swap(aux[0], aux[end - 1]);
    heap_sift_down(v, id, aux, end - 1, 0);
  }
}

}  // namespace

// Heaps -> sorted output rows (best first); aux (the sampled items' logits) travels along.
void heaps_finish(int64_t B, int64_t k, float* heap_val, int64_t* heap_id, float* heap_aux, const int64_t* heap_n) {
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < B; ++b)
    heap_sort_out(heap_val + b * k, heap_id + b * k, heap_aux ? heap_aux + b * k : nullptr, heap_n[b]);
}

// ---------------------------------------------------------------------------- whole-catalog sweeps
// One OpenMP region per call: each thread takes a chunk of rows and walks the whole catalog for them,
// computing each R x nb tile of scores (small enough to stay in its L2) and folding it at once. No
// barrier per block, so the sweep also holds up on a busy machine.
//
// The tile GEMM uses the BLAS sgemm_ already loaded in the process (PyTorch's MKL exports it), looked
// up at run time so this module still links against nothing; called inside an active OpenMP region, MKL
// runs it on the calling thread.
// Without it, a portable packed loop does the GEMM (correct, slower).
namespace {

using sgemm_t = void (*)(const char*, const char*, const int*, const int*, const int*, const float*, const float*,
                         const int*, const float*, const int*, const float*, float*, const int*);
struct Blas {
  sgemm_t sgemm = nullptr;
  Blas() {
    // the global scope first, then libraries a torch build keeps private (RTLD_NOLOAD: only if already
    // loaded into the process; nothing new is ever loaded)
    const char* libs[] = {nullptr, "libtorch_cpu.so", "libmkl_rt.so.2", "libopenblas.so.0", "libblas.so.3"};
    for (const char* lib : libs) {
      void* h = lib ? dlopen(lib, RTLD_LAZY | RTLD_NOLOAD) : RTLD_DEFAULT;
      if (!h) continue;
      sgemm = reinterpret_cast<sgemm_t>(dlsym(h, "sgemm_"));
      if (sgemm) return;
    }
  }
};

const Blas& blas() {
  static const Blas b;
  return b;
}

// Tests set this to run the portable GEMM on a machine that has the BLAS.
std::atomic<bool> g_force_portable{recengine::portable_forced()};  // RECENGINE_PORTABLE: no BLAS

// tile (R x nb, row-major) = Q[0:R] @ E[0:nb].T, with Q (R x D) and E (nb x D) row-major.
__attribute__((always_inline)) inline void tile_gemm_portable_body(const float* Q, const float* E, int64_t R,
                                                                   int64_t nb, int64_t D, float* tile,
                                                                   std::vector<float>& packed) {
  packed.resize(static_cast<size_t>(D * nb));
  float* et = packed.data();  // E block transposed (D x nb): the inner loop runs over contiguous items
  for (int64_t j = 0; j < nb; ++j)
    for (int64_t d = 0; d < D; ++d) et[d * nb + j] = E[j * D + d];
  for (int64_t r = 0; r < R; ++r) {
    float* out = tile + r * nb;
    for (int64_t j = 0; j < nb; ++j) out[j] = 0.0f;
    for (int64_t d = 0; d < D; ++d) {
      const float q = Q[r * D + d];
      const float* e = et + d * nb;
      for (int64_t j = 0; j < nb; ++j) out[j] += q * e[j];
    }
  }
}
RECENGINE_VECTOR_CLONES(tile_gemm_portable)

void tile_gemm(const float* Q, const float* E, int64_t R, int64_t nb, int64_t D, float* tile,
               std::vector<float>& packed) {
  const Blas& b = blas();
  if (b.sgemm && !g_force_portable.load(std::memory_order_relaxed) && R < (1 << 30) && nb < (1 << 30) &&
      D < (1 << 30)) {
    // column-major view: tile^T (nb x R) = E_blk (nb x D, stored as D x nb: 'T') * Q^T (D x R: 'N')
    const int m = static_cast<int>(nb), n = static_cast<int>(R), k = static_cast<int>(D), ld = k, ldc = m;
    const float one = 1.0f, zero = 0.0f;
    b.sgemm("T", "N", &m, &n, &k, &one, E, &ld, Q, &ld, &zero, tile, &ldc);
  } else {
    tile_gemm_portable(Q, E, R, nb, D, tile, packed);
  }
}

struct SweepShape {
  int64_t rows_per_chunk, items_per_block;
};

// Tests set a fixed shape (rows, items) to walk many chunks and blocks on small inputs; 0 = automatic.
std::atomic<int64_t> g_rows_override{0}, g_items_override{0};

SweepShape sweep_shape(int64_t B, int64_t N) {
  const int64_t fixed_rows = g_rows_override.load(), fixed_items = g_items_override.load();
  if (fixed_rows > 0 && fixed_items > 0) return {fixed_rows, fixed_items};
  const int64_t threads = std::max(1, omp_get_max_threads());
  // at least two chunks per thread for balance; at most 256 rows so E is re-read only B/256 times
  int64_t rows = std::min<int64_t>(256, std::max<int64_t>(16, (B + 2 * threads - 1) / (2 * threads)));
  rows = std::max<int64_t>(1, std::min(rows, B));
  // a tile of ~512 KiB: in L2 between the GEMM that writes it and the reduction that reads it
  const int64_t items = std::max<int64_t>(64, std::min<int64_t>(N, (1 << 17) / rows));
  return {rows, std::max<int64_t>(1, items)};
}

// Calls fold(tile, R, nb, r0, item0) for every (row chunk, item block), the row chunks spread over threads;
// one thread owns a chunk for the whole catalog, so per-row state needs no locks.
template <typename Fold>
void sweep(const float* Q, const float* E, int64_t B, int64_t N, int64_t D, Fold fold) {
  const SweepShape sh = sweep_shape(B, N);
  const int64_t chunks = (B + sh.rows_per_chunk - 1) / sh.rows_per_chunk;
#pragma omp parallel
  {
    std::vector<float> tile(static_cast<size_t>(sh.rows_per_chunk * sh.items_per_block));
    std::vector<float> packed;
#pragma omp for schedule(dynamic, 1)
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t r0 = c * sh.rows_per_chunk;
      const int64_t R = std::min(sh.rows_per_chunk, B - r0);
      for (int64_t j0 = 0; j0 < N; j0 += sh.items_per_block) {
        const int64_t nb = std::min(sh.items_per_block, N - j0);
        tile_gemm(Q + r0 * D, E + j0 * D, R, nb, D, tile.data(), packed);
        fold(tile.data(), R, nb, r0, j0);
      }
    }
  }
}

RE_INLINE const int64_t* ex_begin(const int64_t* off, const int64_t* ids, int64_t b) {
  return off ? ids + off[b] : nullptr;
}
RE_INLINE const int64_t* ex_end(const int64_t* off, const int64_t* ids, int64_t b) {
  return off ? ids + off[b + 1] : nullptr;
}

// ---------------------------------------------------------------------- block-major top-k (catalog_blocks.h)
// int8 codes or bfloat16 bits -> float32, `count` values in a row: a contiguous loop the compiler vectorises.
__attribute__((always_inline)) inline void widen_rows_body(RowStorage storage, const void* src, int64_t count,
                                                           float* out) {
  if (storage == RowStorage::kInt8) {
    const int8_t* c = static_cast<const int8_t*>(src);
    for (int64_t i = 0; i < count; ++i) out[i] = static_cast<float>(c[i]);
  } else {
    const uint16_t* h = static_cast<const uint16_t*>(src);
    for (int64_t i = 0; i < count; ++i) out[i] = bits_to_float(static_cast<uint32_t>(h[i]) << 16);
  }
}
RECENGINE_VECTOR_CLONES(widen_rows)

// int8 rows: the code dot products -> scores, scale * (q . codes) + shift * sum(q), in place.
__attribute__((always_inline)) inline void int8_scores_body(float* x, int64_t nb, const float* scale_shift,
                                                            float qsum) {
  for (int64_t j = 0; j < nb; ++j) x[j] = scale_shift[2 * j] * x[j] + scale_shift[2 * j + 1] * qsum;
}
RECENGINE_VECTOR_CLONES(int8_scores)

// At a few rows a BLAS GEMM runs far below the memory bound (it packs the block it then reads once); these
// rows' dot products are computed directly: 16 items at a time, each item's 16-lane partial sums reduced
// with a transpose tree, so the table streams through at close to the memory's speed.
constexpr int64_t kDirectRows = 8;

#ifdef RE_AVX512_BUILD
// GCC 12 builds the plain forms of these from an "undefined" vector and warns -Wmaybe-uninitialized about it; the
// zero-masked forms with every lane kept are the same instructions without the warning.
constexpr __mmask16 kAll16 = 0xffff;
__attribute__((target("avx512f"))) inline __m512 unpacklo(__m512 a, __m512 b) {
  return _mm512_maskz_unpacklo_ps(kAll16, a, b);
}
__attribute__((target("avx512f"))) inline __m512 unpackhi(__m512 a, __m512 b) {
  return _mm512_maskz_unpackhi_ps(kAll16, a, b);
}
template <int kImm>
__attribute__((target("avx512f"))) inline __m512 shuffle_ps(__m512 a, __m512 b) {
  return _mm512_maskz_shuffle_ps(kAll16, a, b, kImm);
}
template <int kImm>
__attribute__((target("avx512f"))) inline __m512 shuffle_f32x4(__m512 a, __m512 b) {
  return _mm512_maskz_shuffle_f32x4(kAll16, a, b, kImm);
}

// 16 vectors -> one: lane t = the sum of the lanes of a[t].
__attribute__((target("avx512f"))) inline __m512 sum_lanes16(const __m512* a) {
  __m512 x[8], z[4];
  for (int i = 0; i < 8; ++i)  // per 128-bit lane: [a0 + a2, b0 + b2, a1 + a3, b1 + b3]
    x[i] = _mm512_add_ps(unpacklo(a[2 * i], a[2 * i + 1]), unpackhi(a[2 * i], a[2 * i + 1]));
  for (int i = 0; i < 4; ++i)  // per 128-bit lane: one partial sum of each of four inputs
    z[i] = _mm512_add_ps(shuffle_ps<_MM_SHUFFLE(1, 0, 1, 0)>(x[2 * i], x[2 * i + 1]),
                         shuffle_ps<_MM_SHUFFLE(3, 2, 3, 2)>(x[2 * i], x[2 * i + 1]));
  const __m512 s01 = _mm512_add_ps(shuffle_f32x4<_MM_SHUFFLE(2, 0, 2, 0)>(z[0], z[1]),
                                   shuffle_f32x4<_MM_SHUFFLE(3, 1, 3, 1)>(z[0], z[1]));
  const __m512 s23 = _mm512_add_ps(shuffle_f32x4<_MM_SHUFFLE(2, 0, 2, 0)>(z[2], z[3]),
                                   shuffle_f32x4<_MM_SHUFFLE(3, 1, 3, 1)>(z[2], z[3]));
  return _mm512_add_ps(shuffle_f32x4<_MM_SHUFFLE(2, 0, 2, 0)>(s01, s23),
                       shuffle_f32x4<_MM_SHUFFLE(3, 1, 3, 1)>(s01, s23));
}

// 16 values of a stored row from element `at` on, as float32 (int8 codes and bfloat16 bits widen exactly); the
// lanes outside m read as 0 and touch no memory.
template <RowStorage S>
__attribute__((target("avx512f,avx512bw,avx512vl"))) inline __m512 load16(const void* rows, int64_t at, __mmask16 m) {
  if constexpr (S == RowStorage::kFloat32) {
    return _mm512_maskz_loadu_ps(m, static_cast<const float*>(rows) + at);
  } else if constexpr (S == RowStorage::kInt8) {
    return _mm512_maskz_cvtepi32_ps(
        kAll16, _mm512_maskz_cvtepi8_epi32(kAll16, _mm_maskz_loadu_epi8(m, static_cast<const int8_t*>(rows) + at)));
  } else {
    const __m512i h =
        _mm512_maskz_cvtepu16_epi32(kAll16, _mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(rows) + at));
    return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(kAll16, h, 16));
  }
}

template <RowStorage S>
inline float value_at(const void* rows, int64_t at) {
  if constexpr (S == RowStorage::kFloat32) {
    return static_cast<const float*>(rows)[at];
  } else if constexpr (S == RowStorage::kInt8) {
    return static_cast<float>(static_cast<const int8_t*>(rows)[at]);
  } else {
    return bits_to_float(static_cast<uint32_t>(static_cast<const uint16_t*>(rows)[at]) << 16);
  }
}

// out[0:16] = q . row t for the 16 stored rows from `first` on (D values apart). The accumulators are indexed by
// constants only, so they live in registers.
template <RowStorage S>
__attribute__((target("avx512f,avx512bw,avx512vl"))) inline void dots16(const float* q, const void* rows, int64_t first,
                                                                        int64_t D, float* out) {
  __m512 acc[16];
#pragma GCC unroll 16
  for (int t = 0; t < 16; ++t) acc[t] = _mm512_setzero_ps();
  // item by item, so the table is read in address order (what the hardware prefetcher follows)
#pragma GCC unroll 16
  for (int t = 0; t < 16; ++t)
    for (int64_t d = 0; d < D; d += 16) {
      const __mmask16 m = D - d >= 16 ? kAll16 : static_cast<__mmask16>((1u << (D - d)) - 1);
      acc[t] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + d), load16<S>(rows, (first + t) * D + d, m), acc[t]);
    }
  _mm512_storeu_ps(out, sum_lanes16(acc));
}

// tile (R x nb, row-major) = Q[0:R] . stored rows [j0, j0 + nb) for a few rows R, read straight from the table (no
// widened copy): 16 items at a time, the last few of a block with plain dot products.
template <RowStorage S>
__attribute__((target("avx512f,avx512bw,avx512vl"))) void direct_dots(const float* Q, const void* rows, int64_t j0,
                                                                      int64_t R, int64_t nb, int64_t D, float* tile) {
  const int64_t full = nb / 16 * 16;
  for (int64_t j = 0; j < full; j += 16)
    for (int64_t r = 0; r < R; ++r) dots16<S>(Q + r * D, rows, j0 + j, D, tile + r * nb + j);
  for (int64_t r = 0; r < R; ++r)
    for (int64_t j = full; j < nb; ++j) {
      float acc = 0.0f;
      for (int64_t d = 0; d < D; ++d) acc += Q[r * D + d] * value_at<S>(rows, (j0 + j) * D + d);
      tile[r * nb + j] = acc;
    }
}

bool cpu_has_avx512bw_vl() {
  static const bool has =
      __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
  return has;
}
#endif

// Whether the block sweep scores R rows with direct_dots (a few rows, on a CPU with AVX-512 BW/VL, not portable).
bool direct_rows(int64_t R) {
#ifdef RE_AVX512_BUILD
  return R <= kDirectRows && recengine::vector_level() == 2 && cpu_has_avx512bw_vl();
#else
  return false;
#endif
}

// direct_dots for the table's storage.
void direct_block(RowStorage storage, const float* Q, const void* rows, int64_t j0, int64_t R, int64_t nb, int64_t D,
                  float* tile) {
#ifdef RE_AVX512_BUILD
  if (storage == RowStorage::kFloat32) return direct_dots<RowStorage::kFloat32>(Q, rows, j0, R, nb, D, tile);
  if (storage == RowStorage::kInt8) return direct_dots<RowStorage::kInt8>(Q, rows, j0, R, nb, D, tile);
  return direct_dots<RowStorage::kBf16>(Q, rows, j0, R, nb, D, tile);
#endif
}

}  // namespace

void topk_sweep_blocks(const CatalogRows& cat, const float* Q, int64_t B, int64_t N, int64_t D, const float* bias,
                       float inv_temp, const int64_t* ex_off, const int64_t* ex_ids, int64_t k, float* heap_val,
                       int64_t* heap_id, int64_t* heap_n) {
  if (B == 0 || N == 0) return;
  const bool widen = cat.storage != RowStorage::kFloat32;
  const int64_t elem = cat.storage == RowStorage::kFloat32 ? 4 : cat.storage == RowStorage::kInt8 ? 1 : 2;
  // rows per GEMM: all of a small batch; items per block: a tile of <= 512 KiB and a widened block of <= 256 KiB
  // (both stay in L2 while the block is scored), and blocks small enough to spread over the threads
  const int64_t fixed_rows = g_rows_override.load(), fixed_items = g_items_override.load();
  const int64_t R = fixed_rows > 0 ? std::min(fixed_rows, B) : std::min<int64_t>(B, 256);
  int64_t nb = std::min<int64_t>(4096, (int64_t{1} << 17) / R);
  if (widen) nb = std::min(nb, (int64_t{1} << 16) / std::max<int64_t>(1, D));
  nb = fixed_items > 0 ? fixed_items : std::max<int64_t>(64, nb);
  const int64_t blocks = (N + nb - 1) / nb;
  const bool direct = direct_rows(R);
  // a thread per block at most, and per 2^19 multiply-adds at least (a small call stays on the calling thread:
  // waking a team costs more than its work)
  const int64_t work_threads = std::max<int64_t>(1, (N * D * B) >> 19);
  const int threads = static_cast<int>(
      std::max<int64_t>(1, std::min({static_cast<int64_t>(omp_get_max_threads()), blocks, work_threads})));
  std::vector<float> qsum(cat.storage == RowStorage::kInt8 ? static_cast<size_t>(B) : 0, 0.0f);
  for (size_t b = 0; b < qsum.size(); ++b)
    for (int64_t d = 0; d < D; ++d) qsum[b] += Q[static_cast<int64_t>(b) * D + d];
  // thread 0 folds into the caller's heaps, the others into heaps of their own, merged at the end
  const size_t more = static_cast<size_t>(threads - 1);
  std::vector<float> more_val(more * static_cast<size_t>(B * k), kNegInf);
  std::vector<int64_t> more_id(more * static_cast<size_t>(B * k), -1);
  std::vector<int64_t> more_n(more * static_cast<size_t>(B), 0);
#pragma omp parallel num_threads(threads)
  {
    const int64_t t = omp_get_thread_num();
    float* hv = t == 0 ? heap_val : more_val.data() + (t - 1) * B * k;
    int64_t* hi = t == 0 ? heap_id : more_id.data() + (t - 1) * B * k;
    int64_t* hn = t == 0 ? heap_n : more_n.data() + (t - 1) * B;
    std::vector<float> tile(static_cast<size_t>(R * nb)), wide(widen && !direct ? static_cast<size_t>(nb * D) : 0);
    std::vector<float> packed;
    // dynamic: on a busy machine the thread that gets the cores takes more of the blocks
#pragma omp for schedule(dynamic, 1)
    for (int64_t blk = 0; blk < blocks; ++blk) {
      const int64_t j0 = blk * nb, n = std::min(nb, N - j0);
      // the block's rows as float32 for the GEMM: in place, or widened (the direct dot products widen in registers)
      const float* e = widen ? nullptr : static_cast<const float*>(cat.rows) + j0 * D;
      if (widen && !direct) {
        widen_rows(cat.storage, static_cast<const char*>(cat.rows) + j0 * D * elem, n * D, wide.data());
        e = wide.data();
      }
      for (int64_t r0 = 0; r0 < B; r0 += R) {
        const int64_t rows = std::min(R, B - r0);
        if (direct)
          direct_block(cat.storage, Q + r0 * D, cat.rows, j0, rows, n, D, tile.data());
        else
          tile_gemm(Q + r0 * D, e, rows, n, D, tile.data(), packed);
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t b = r0 + r;
          float* x = tile.data() + r * n;
          if (cat.storage == RowStorage::kInt8) int8_scores(x, n, cat.scale_shift + 2 * j0, qsum[b]);
          topk_row(x, n, j0, bias, inv_temp, ex_begin(ex_off, ex_ids, b), ex_end(ex_off, ex_ids, b), k, hv + b * k,
                   hi + b * k, hn + b);
        }
      }
    }
    // the other threads' entries into the caller's heaps (heap_offer's order is total: the same set whichever
    // thread scored which block)
#pragma omp for schedule(static)
    for (int64_t row = 0; row < B; ++row)
      for (size_t s = 0; s < more; ++s) {
        const size_t base = s * static_cast<size_t>(B * k) + static_cast<size_t>(row * k);
        for (int64_t i = 0; i < more_n[s * static_cast<size_t>(B) + static_cast<size_t>(row)]; ++i)
          heap_n[row] = heap_offer(heap_val + row * k, heap_id + row * k, nullptr, heap_n[row], k, more_val[base + i],
                                   more_id[base + i], 0.0f);
      }
  }
}

bool topk_bf16_available();
void topk_sweep_bf16(const float* Q, const float* E, int64_t B, int64_t N, int64_t D, const float* bias, float inv_temp,
                     const int64_t* ex_off, const int64_t* ex_ids, int64_t k, float* heap_val, int64_t* heap_id,
                     int64_t* heap_n);

// The bf16 sweep computes 64 rows at once: it needs 48+ rows (3/4 of a group) to beat the float32 sweep.
constexpr int64_t kBf16MinRows = 48;

void topk_sweep(const float* Q, const float* E, int64_t B, int64_t N, int64_t D, const float* bias, float inv_temp,
                const int64_t* ex_off, const int64_t* ex_ids, int64_t k, float* heap_val, int64_t* heap_id,
                int64_t* heap_n) {
  if (B >= kBf16MinRows && topk_bf16_available())  // the exact bf16-prefiltered sweep (topk_bf16.cpp)
    return topk_sweep_bf16(Q, E, B, N, D, bias, inv_temp, ex_off, ex_ids, k, heap_val, heap_id, heap_n);
  if (B < kBf16MinRows)  // too few rows to give every thread a chunk: the threads split the catalog instead
    return topk_sweep_blocks({RowStorage::kFloat32, E, nullptr}, Q, B, N, D, bias, inv_temp, ex_off, ex_ids, k,
                             heap_val, heap_id, heap_n);
  sweep(Q, E, B, N, D, [&](float* tile, int64_t R, int64_t nb, int64_t r0, int64_t item0) {
    for (int64_t r = 0; r < R; ++r) {
      const int64_t b = r0 + r;
      topk_row(tile + r * nb, nb, item0, bias, inv_temp, ex_begin(ex_off, ex_ids, b), ex_end(ex_off, ex_ids, b), k,
               heap_val + b * k, heap_id + b * k, heap_n + b);
    }
  });
}

void lse_sweep(const float* Q, const float* E, int64_t B, int64_t N, int64_t D, const float* bias, float inv_temp,
               const int64_t* ex_off, const int64_t* ex_ids, float* m, float* s, const int64_t* target,
               float* x_target) {
  sweep(Q, E, B, N, D, [&](float* tile, int64_t R, int64_t nb, int64_t r0, int64_t item0) {
    for (int64_t r = 0; r < R; ++r) {
      const int64_t b = r0 + r;
      lse_row(tile + r * nb, nb, item0, bias, inv_temp, ex_begin(ex_off, ex_ids, b), ex_end(ex_off, ex_ids, b), m + b,
              s + b, target ? target[b] : -1, x_target ? x_target + b : nullptr);
    }
  });
}

void sample_sweep(const float* Q, const float* E, int64_t B, int64_t N, int64_t D, const float* bias, float inv_temp,
                  const int64_t* ex_off, const int64_t* ex_ids, uint32_t seed_key, int64_t k, float* heap_key,
                  int64_t* heap_id, float* heap_x, int64_t* heap_n, float* m, float* s) {
  sweep(Q, E, B, N, D, [&](float* tile, int64_t R, int64_t nb, int64_t r0, int64_t item0) {
    for (int64_t r = 0; r < R; ++r) {
      const int64_t b = r0 + r;
      const uint32_t rkey = mix32(mix32(static_cast<uint32_t>(b)) ^ seed_key);
      sample_row(tile + r * nb, nb, item0, bias, inv_temp, ex_begin(ex_off, ex_ids, b), ex_end(ex_off, ex_ids, b),
                 seed_key, rkey, k, heap_key + b * k, heap_id + b * k, heap_x + b * k, heap_n + b, m + b, s + b);
    }
  });
}

// The cross-entropy backward in one sweep. Threads own item blocks (so dE and dbias rows have one
// writer) and walk every row chunk, recomputing the logits tile and turning it into
// G = softmax * p_scale - onehot(target) * t_scale (see ce_grad_row); then dE_blk += G^T Q_chunk,
// dbias_blk += column sums of G, and dQ_chunk += G E_blk into the thread's own dQ copy (B x D: small),
// summed at the end in thread order. The blocks are dealt out statically, not dynamically: a thread's dQ copy
// sums the terms of its blocks, so which thread takes which block must not depend on timing, or dQ's rounding
// would change from call to call (and so every training run at a fixed seed and thread count).
// The logits are (Q E^T + bias) * inv_temp, as in every sweep; the scales carry inv_temp.
void ce_backward_sweep(const float* Q, const float* E, int64_t B, int64_t N, int64_t D, const float* bias,
                       float inv_temp, const int64_t* ex_off, const int64_t* ex_ids, const float* lse,
                       const int64_t* target, const float* p_scale, const float* t_scale, float* dQ, float* dE,
                       float* dbias) {
  const SweepShape sh = sweep_shape(B, N);
  const int64_t blocks = (N + sh.items_per_block - 1) / sh.items_per_block;
  const int threads = std::max(1, omp_get_max_threads());
  std::vector<float> dq_parts(dQ ? static_cast<size_t>(threads) * B * D : 0, 0.0f);
#pragma omp parallel num_threads(threads)
  {
    std::vector<float> tile(static_cast<size_t>(sh.rows_per_chunk * sh.items_per_block));
    std::vector<float> packed;
    float* dq_mine = dQ ? dq_parts.data() + static_cast<size_t>(omp_get_thread_num()) * B * D : nullptr;
    const Blas& b = blas();
    const bool use_blas = b.sgemm && !g_force_portable.load() && B < (1 << 30) && N < (1 << 30) && D < (1 << 30);
#pragma omp for schedule(static)
    for (int64_t blk = 0; blk < blocks; ++blk) {
      const int64_t j0 = blk * sh.items_per_block;
      const int64_t nb = std::min(sh.items_per_block, N - j0);
      const float* eb = E + j0 * D;
      for (int64_t r0 = 0; r0 < B; r0 += sh.rows_per_chunk) {
        const int64_t R = std::min(sh.rows_per_chunk, B - r0);
        float* g = tile.data();
        tile_gemm(Q + r0 * D, eb, R, nb, D, g, packed);
        for (int64_t r = 0; r < R; ++r) {
          const int64_t row = r0 + r;
          ce_grad_row(g + r * nb, nb, j0, bias, inv_temp, ex_begin(ex_off, ex_ids, row), ex_end(ex_off, ex_ids, row),
                      lse[row], target[row], p_scale[row], t_scale[row]);
        }
        if (dbias)
          for (int64_t r = 0; r < R; ++r)
            for (int64_t j = 0; j < nb; ++j) dbias[j0 + j] += g[r * nb + j];
        const int m_d = static_cast<int>(D), n_b = static_cast<int>(nb), r_n = static_cast<int>(R);
        const float one = 1.0f;
        if (dE) {  // dE_blk (nb x D) += G^T (nb x R) Q_chunk (R x D)
          if (use_blas) {
            b.sgemm("N", "T", &m_d, &n_b, &r_n, &one, Q + r0 * D, &m_d, g, &n_b, &one, dE + j0 * D, &m_d);
          } else {
            for (int64_t r = 0; r < R; ++r)
              for (int64_t j = 0; j < nb; ++j) {
                const float w = g[r * nb + j];
                const float* q = Q + (r0 + r) * D;
                float* out = dE + (j0 + j) * D;
                for (int64_t d = 0; d < D; ++d) out[d] += w * q[d];
              }
          }
        }
        if (dq_mine) {  // dQ_chunk (R x D) += G (R x nb) E_blk (nb x D)
          float* out = dq_mine + r0 * D;
          if (use_blas) {
            b.sgemm("N", "N", &m_d, &r_n, &n_b, &one, eb, &m_d, g, &n_b, &one, out, &m_d);
          } else {
            for (int64_t r = 0; r < R; ++r)
              for (int64_t j = 0; j < nb; ++j) {
                const float w = g[r * nb + j];
                for (int64_t d = 0; d < D; ++d) out[r * D + d] += w * eb[j * D + d];
              }
          }
        }
      }
    }
    if (dQ) {  // sum the threads' copies (after the implicit barrier of the loop above)
#pragma omp for schedule(static)
      for (int64_t i = 0; i < B * D; ++i) {
        float acc = 0.0f;
        for (int t = 0; t < threads; ++t) acc += dq_parts[static_cast<size_t>(t) * B * D + i];
        dQ[i] += acc;
      }
    }
  }
}

// Whether the block sweep scores a few rows with the direct AVX-512 dot products (else with the tile GEMM).
bool topk_direct_available() { return direct_rows(1); }

// 1 when the tile GEMM uses the process's BLAS (sgemm_), 0 when the portable loop.
int blas_found() { return blas().sgemm != nullptr; }
void force_portable_gemm(bool on) { g_force_portable.store(on); }
bool portable_gemm_forced() { return g_force_portable.load(); }
void set_sweep_shape(int64_t rows, int64_t items) {
  g_rows_override.store(rows > 0 ? rows : 0);
  g_items_override.store(items > 0 ? items : 0);
}

// lse = m + log(s) per row (-inf for a row with every item excluded).
void lse_finish(int64_t B, const float* m, const float* s, float* lse) {
  for (int64_t b = 0; b < B; ++b) lse[b] = m[b] == kNegInf ? kNegInf : m[b] + std::log(s[b]);
}

}  // namespace recengine::policy
