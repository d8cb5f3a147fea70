// Sum-tree + min-tree kernels for prioritized replay (layout and contracts in replay.h).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "replay.h"

namespace recengine::replay {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

int log2_exact(int64_t leaves) {
  int depth = 0;
  while ((int64_t{1} << depth) < leaves) ++depth;
  return depth;
}

inline double min_leaf_value(double v) { return v > 0.0 ? v : kInf; }

inline uint64_t to_bits(double v) {
  uint64_t u;
  std::memcpy(&u, &v, sizeof u);
  return u;
}

inline double from_bits(uint64_t u) {
  double v;
  std::memcpy(&v, &u, sizeof v);
  return v;
}

// Recompute the internal nodes of levels [1, leaves) from their children, bottom level first.
void rebuild_levels(double* sum, double* mn, int64_t leaves) {
  for (int64_t first = leaves / 2; first >= 1; first /= 2) {
    const int64_t last = 2 * first;  // nodes [first, last) form this level
#pragma omp parallel for schedule(static) if (first >= (int64_t{1} << 15))
    for (int64_t k = first; k < last; ++k) {
      sum[k] = sum[2 * k] + sum[2 * k + 1];
      mn[k] = std::min(mn[2 * k], mn[2 * k + 1]);
    }
  }
}

// Recompute the ancestors of the n leaves in `nodes` (leaf node ids; overwritten), level by level:
// all touched nodes of a level are final before any parent reads them, so recomputing a node twice is
// harmless, and a parent equal to the one just recomputed is skipped (sampled indices come sorted, so
// near the root the list collapses to a few nodes).
// Every sum ancestor changes, but a min node rarely does (only when a new leaf is, or replaces, the
// smallest under it): the min-tree stops climbing from a node whose min is unchanged, so it touches
// ~2 levels per leaf instead of all (its nodes are not in cache; the sampled paths of the sum-tree are).
// Stopping is exact: an unchanged node leaves its parent's inputs unchanged, and a parent with a
// changed child is recomputed from that child's entry.
void fix_ancestors(double* sum, double* mn, int64_t leaves, int64_t* nodes, int64_t n) {
  const int depth = log2_exact(leaves);
  std::vector<int64_t> min_nodes(nodes, nodes + n);
  int64_t n_min = n;
  for (int level = 0; level < depth; ++level) {
    int64_t kept = 0;
    for (int64_t j = 0; j < n; ++j) {
      const int64_t k = nodes[j] >> 1;
      if (kept > 0 && nodes[kept - 1] == k) continue;
      sum[k] = sum[2 * k] + sum[2 * k + 1];
      nodes[kept++] = k;                       // kept <= j: never overwrites an entry not yet read
      __builtin_prefetch(sum + 2 * (k >> 1));  // the next level reads the children of k's parent
    }
    n = kept;
    kept = 0;
    for (int64_t j = 0; j < n_min; ++j) {
      const int64_t k = min_nodes[j] >> 1;
      if (kept > 0 && min_nodes[kept - 1] == k) continue;
      const double v = std::min(mn[2 * k], mn[2 * k + 1]);
      if (v == mn[k]) continue;
      mn[k] = v;
      min_nodes[kept++] = k;
      __builtin_prefetch(mn + 2 * (k >> 1));
    }
    n_min = kept;
  }
}

// Touching n leaves costs ~n*depth node updates; past a fraction of the tree a full rebuild is cheaper.
bool rebuild_is_cheaper(int64_t n, int64_t leaves) { return n * log2_exact(leaves) >= leaves; }

}  // namespace

void tree_rebuild(double* sum, double* mn, int64_t leaves) { rebuild_levels(sum, mn, leaves); }

template <typename P>
int tree_update(double* sum, double* mn, int64_t leaves, int64_t limit, const int64_t* idx, const P* priorities,
                int64_t n, double alpha, double* max_leaf, int64_t* bad) {
  std::vector<double> values(n);
  double top = 0.0;
  for (int64_t j = 0; j < n; ++j) {  // validate everything before writing anything
    // the leaves written below are cold: fetch them now, while the pow() calls run
    if (idx[j] >= 0 && idx[j] < limit) {
      __builtin_prefetch(sum + leaves + idx[j], 1);
      __builtin_prefetch(mn + leaves + idx[j], 1);
      // and the min nodes the climb usually reaches (it stops ~2 levels up, see fix_ancestors)
      __builtin_prefetch(mn + ((leaves + idx[j]) >> 1), 1);
      __builtin_prefetch(mn + ((leaves + idx[j]) >> 2), 1);
    }
    const double p = static_cast<double>(priorities[j]);
    if (!std::isfinite(p)) {
      *bad = j;
      return kNotFinite;
    }
    if (p < 0.0) {
      *bad = j;
      return kNegative;
    }
    if (idx[j] < 0 || idx[j] >= limit) {
      *bad = j;
      return kIndexOutOfRange;
    }
    values[j] = std::pow(p, alpha);
    if (!std::isfinite(values[j])) {
      *bad = j;
      return kNotFinite;
    }  // p^alpha overflowed
    top = std::max(top, values[j]);
  }
  *max_leaf = top;
  for (int64_t j = 0; j < n; ++j) {
    sum[leaves + idx[j]] = values[j];
    mn[leaves + idx[j]] = min_leaf_value(values[j]);
  }
  if (rebuild_is_cheaper(n, leaves)) {
    rebuild_levels(sum, mn, leaves);
  } else {
    std::vector<int64_t> nodes(n);
    for (int64_t j = 0; j < n; ++j) nodes[j] = leaves + idx[j];
    fix_ancestors(sum, mn, leaves, nodes.data(), n);
  }
  return kOk;
}

template int tree_update<float>(double*, double*, int64_t, int64_t, const int64_t*, const float*, int64_t, double,
                                double*, int64_t*);
template int tree_update<double>(double*, double*, int64_t, int64_t, const int64_t*, const double*, int64_t, double,
                                 double*, int64_t*);

void tree_fill(double* sum, double* mn, int64_t leaves, int64_t capacity, int64_t start, int64_t count, double value) {
  const double m = min_leaf_value(value);
  for (int64_t j = 0; j < count; ++j) {
    const int64_t i = (start + j) % capacity;
    sum[leaves + i] = value;
    mn[leaves + i] = m;
  }
  if (rebuild_is_cheaper(count, leaves)) {
    rebuild_levels(sum, mn, leaves);
  } else {
    std::vector<int64_t> nodes(count);
    for (int64_t j = 0; j < count; ++j) nodes[j] = leaves + (start + j) % capacity;
    fix_ancestors(sum, mn, leaves, nodes.data(), count);
  }
}

void tree_sample(const double* sum, const double* mn, int64_t leaves, const double* u, int64_t batch, double beta,
                 int64_t* out_idx, float* out_weights) {
  const double total = sum[1];
  const double segment = total / static_cast<double>(batch);
  const int depth = log2_exact(leaves);
  std::vector<double> mass(batch);
  for (int64_t b = 0; b < batch; ++b) {
    mass[b] = std::min((static_cast<double>(b) + u[b]) * segment, total);
    out_idx[b] = 1;  // node ids during the descent, leaf ids at the end
  }
  // Branch-free steps (the direction is a coin flip, a branch would mispredict half the time), and a
  // prefetch of the children each descent reads at the next level, `batch` iterations later.
  for (int level = 0; level < depth; ++level) {
    for (int64_t b = 0; b < batch; ++b) {
      const int64_t k = out_idx[b];
      const double left = sum[2 * k];
      const double right = sum[2 * k + 1];
      // Go right only into positive mass, so rounding at a boundary never lands on an empty leaf.
      // The select is done on bits: written as `go_right ? left : 0.0`, GCC emitted a branch here.
      const uint64_t go_right = static_cast<uint64_t>(!(mass[b] < left)) & static_cast<uint64_t>(right > 0.0);
      mass[b] -= from_bits(to_bits(left) & (0 - go_right));
      const int64_t next = 2 * k + static_cast<int64_t>(go_right);
      out_idx[b] = next;
      if (level + 1 < depth) __builtin_prefetch(sum + 2 * next);
    }
  }
  const double p_min = mn[1];
  for (int64_t b = 0; b < batch; ++b) {
    const double p = sum[out_idx[b]];
    out_weights[b] = static_cast<float>(std::pow(p_min / p, beta));
    out_idx[b] -= leaves;
  }
}

// memcpy of one row; the scalar columns (1-8 bytes) get fixed-size copies instead of a libc call.
inline void copy_row(uint8_t* dst, const uint8_t* src, int64_t rb) {
  switch (rb) {
    case 1:
      std::memcpy(dst, src, 1);
      break;
    case 2:
      std::memcpy(dst, src, 2);
      break;
    case 4:
      std::memcpy(dst, src, 4);
      break;
    case 8:
      std::memcpy(dst, src, 8);
      break;
    default:
      std::memcpy(dst, src, static_cast<size_t>(rb));
  }
}

void gather_rows(int num_fields, const uint8_t* const* srcs, uint8_t* const* dsts, const int64_t* row_bytes,
                 const int64_t* idx, int64_t n) {
  // Random rows are latency-bound: while copying row j, prefetch every cache line of row j + kAhead, so
  // many misses are in flight at once. One field at a time, which beat row-major order (benchmarks/RESULTS.md).
  constexpr int64_t kAhead = 32;
  for (int f = 0; f < num_fields; ++f) {
    const uint8_t* src = srcs[f];
    uint8_t* dst = dsts[f];
    const int64_t rb = row_bytes[f];
    for (int64_t j = 0; j < std::min(n, kAhead); ++j)
      for (int64_t off = 0; off < rb; off += 64) __builtin_prefetch(src + idx[j] * rb + off);
    for (int64_t j = 0; j < n; ++j) {
      if (j + kAhead < n)
        for (int64_t off = 0; off < rb; off += 64) __builtin_prefetch(src + idx[j + kAhead] * rb + off);
      copy_row(dst + j * rb, src + idx[j] * rb, rb);
    }
  }
}

template <typename R, typename Dn>
void n_step_returns(const R* reward, const Dn* done, int64_t capacity, int64_t position, int64_t num_envs,
                    int64_t n_step, double gamma, const int64_t* idx, int64_t batch, float* n_reward, float* n_discount,
                    bool* n_done, int64_t* n_steps, int64_t* last) {
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t start = idx[b];
    // rows from `start` to the newest in this environment's stream, `start` itself included
    const int64_t behind = ((position - start - 1) % capacity + capacity) % capacity;
    const int64_t available = behind / num_envs + 1;
    double total = 0.0, discount = 1.0;
    int64_t m = 0, slot = start;
    bool ended = false;
    while (true) {
      total += discount * static_cast<double>(reward[slot]);
      ++m;
      ended = done[slot] != 0;
      if (ended || m == n_step || m >= available) break;
      discount *= gamma;
      slot = (slot + num_envs) % capacity;
    }
    n_reward[b] = static_cast<float>(total);
    n_discount[b] = ended ? 0.0f : static_cast<float>(std::pow(gamma, static_cast<double>(m)));
    n_done[b] = ended;
    n_steps[b] = m;
    last[b] = slot;
  }
}

#define RECENGINE_N_STEP(R, Dn)                                                                                        \
  template void n_step_returns<R, Dn>(const R*, const Dn*, int64_t, int64_t, int64_t, int64_t, double, const int64_t*, \
                                      int64_t, float*, float*, bool*, int64_t*, int64_t*);
RECENGINE_N_STEP(float, uint8_t)
RECENGINE_N_STEP(float, float)
RECENGINE_N_STEP(double, uint8_t)
RECENGINE_N_STEP(double, float)
#undef RECENGINE_N_STEP

}  // namespace recengine::replay
