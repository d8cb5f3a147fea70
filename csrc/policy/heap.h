// The k-best heap every top-k style policy kernel folds into (shared by the fp32 sweeps and the bf16
// prefilter). Header-only so each caller's vector clones inline it.
#pragma once

#include <cstdint>
#include <limits>
#include <utility>

namespace recengine::policy {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// ---- a k-best min-heap of (value, id): the root is the worst kept entry. "worse" = lower value, or an
// equal value with a higher id (ties go to the lower id).
inline bool worse(float va, int64_t ia, float vb, int64_t ib) { return va < vb || (va == vb && ia > ib); }

inline void heap_sift_down(float* v, int64_t* id, float* aux, int64_t n, int64_t i) {
  for (;;) {
    int64_t l = 2 * i + 1, w = i;
    if (l < n && worse(v[l], id[l], v[w], id[w])) w = l;
    if (l + 1 < n && worse(v[l + 1], id[l + 1], v[w], id[w])) w = l + 1;
    if (w == i) return;
    std::swap(v[i], v[w]);
    std::swap(id[i], id[w]);
    if (aux) std::swap(aux[i], aux[w]);
    i = w;
  }
}

// Offer (value, id[, aux]) to a heap holding n of k entries; returns the new count.
inline int64_t heap_offer(float* v, int64_t* id, float* aux, int64_t n, int64_t k, float val, int64_t j, float a) {
  if (n < k) {  // not full: push and sift up
    int64_t i = n++;
    v[i] = val;
    id[i] = j;
    if (aux) aux[i] = a;
    while (i > 0) {
      int64_t p = (i - 1) / 2;
      if (!worse(v[i], id[i], v[p], id[p])) break;
      std::swap(v[i], v[p]);
      std::swap(id[i], id[p]);
      if (aux) std::swap(aux[i], aux[p]);
      i = p;
    }
    return n;
  }
  if (!worse(v[0], id[0], val, j)) return n;  // not better than the worst kept
  v[0] = val;
  id[0] = j;
  if (aux) aux[0] = a;
  heap_sift_down(v, id, aux, n, 0);
  return n;
}

// Lowest value a new entry must beat to enter (ids only grow, so an equal value never enters).
inline float heap_threshold(const float* v, int64_t n, int64_t k) { return n < k ? kNegInf : v[0]; }

}  // namespace recengine::policy
