// Replay family kernels: raw pointers and sizes only (checks and the GIL release live in bindings.cpp).
#pragma once

#include <cstdint>

namespace recengine::replay {

// ---------------------------------------------------------------------------------- the trees
// A sum-tree and a min-tree over `leaves` slots (a power of two), each stored as 2*leaves doubles:
// node 1 is the root, node k has children 2k and 2k+1, leaf i sits at node leaves+i (node 0 unused).
// Sums are float64 and every internal node is recomputed from its two children (never updated by a
// delta), so a tree of 2^20 leaves does not drift however many updates it sees.
// The min-tree holds +inf for empty slots and for zero-priority slots (they are never sampled, so
// they do not count toward the largest importance weight).

// Recompute every internal node of both trees from the leaves.
void tree_rebuild(double* sum, double* mn, int64_t leaves);

// Outcome of tree_update's validation (nothing is written unless it is kOk).
enum UpdateStatus : int { kOk = 0, kNotFinite = 1, kNegative = 2, kIndexOutOfRange = 3 };

// Set leaf idx[j] to priorities[j]^alpha for j in [0, n) (in order, so the last of duplicates wins),
// then recompute the ancestors of the touched leaves. First validates everything: each priority
// finite and >= 0, each index in [0, limit); on failure returns the status and the offending
// position in *bad and changes nothing (p^alpha overflowing counts as not finite). On success
// *max_leaf is the largest leaf value written (0 when n == 0).
template <typename P>
int tree_update(double* sum, double* mn, int64_t leaves, int64_t limit, const int64_t* idx, const P* priorities,
                int64_t n, double alpha, double* max_leaf, int64_t* bad);

// Set leaves [start, start+count) (wrapping modulo `capacity`) to one value, then fix the ancestors.
void tree_fill(double* sum, double* mn, int64_t leaves, int64_t capacity, int64_t start, int64_t count, double value);

// Stratified proportional sampling (Schaul et al. 2016): sample b draws the mass
// (b + u[b]) * total / batch and descends the sum-tree to the leaf holding it. The B descents
// advance together one level at a time, so their cache misses overlap.
// weights[b] = (N*P(i))^-beta / max_j (N*P(j))^-beta = (p_min / p_i)^beta, p_min from the min-tree.
// The caller guarantees total > 0.
void tree_sample(const double* sum, const double* mn, int64_t leaves, const double* u, int64_t batch, double beta,
                 int64_t* out_idx, float* out_weights);

// For every field f: dsts[f][j, :] = srcs[f][idx[j], :], rows of row_bytes[f] bytes (idx already checked).
void gather_rows(int num_fields, const uint8_t* const* srcs, uint8_t* const* dsts, const int64_t* row_bytes,
                 const int64_t* idx, int64_t n);

// n-step returns from the ring: from slot idx[b], step k reads slot (idx[b] + k*num_envs) % capacity, for
// k < n_step, stopping after the first done and at the newest stored row (the one before `position`).
// Writes sum_k gamma^k reward_k, gamma^m * (1 - done_last), done_last, m and the last slot.
template <typename R, typename Dn>
void n_step_returns(const R* reward, const Dn* done, int64_t capacity, int64_t position, int64_t num_envs,
                    int64_t n_step, double gamma, const int64_t* idx, int64_t batch, float* n_reward, float* n_discount,
                    bool* n_done, int64_t* n_steps, int64_t* last);

// ------------------------------------------------------------------------------------ TD loss
// target = reward + discount * (1 - done) * next_q; td = target - q_sa;
// new_priority = (|td| + eps)^alpha; returns sum_b weight[b] * huber_delta(td[b]) (float64 accumulation).
double td_loss_forward(const float* q_sa, const float* next_q, const float* reward, const float* done,
                       const float* discount, const float* weight, int64_t batch, float huber_delta, float alpha,
                       float eps, float* td, float* new_priority);

// G = grad_loss * weight * clamp(td, -delta, delta) / batch + grad_td (grad_td may be null);
// grad_q_sa = -G; grad_next_q = G * discount * (1 - done) (skipped when grad_next_q is null).
void td_loss_backward(float grad_loss, const float* grad_td, const float* td, const float* weight,
                      const float* discount, const float* done, int64_t batch, float huber_delta, float* grad_q_sa,
                      float* grad_next_q);

}  // namespace recengine::replay
