// Table-batched embedding bag kernels (CPU): pooled lookup, its backward, and the backward fused
// with the optimizer update. Raw pointers and sizes only; the binding checks the arrays.
//
// Layout (the same as recengine.ops.embedding_bag):
//   weights (R, D) float32, every table's rows stacked; table_offsets (T+1) int64, table t owns rows
//   [table_offsets[t], table_offsets[t+1]); ids (N) int32|int64 local to their table; offsets
//   (T*B+1) int64, table-major: bag j = t*B + b holds ids[offsets[j] : offsets[j+1]];
//   psw (N) float32 or null; output / grad_output (B, T*D), table t in columns [t*D, (t+1)*D).
#pragma once

#include <cstdint>
#include <string>

namespace recengine::embedding_bag {

struct Bags {
  const int64_t* table_offsets;  // (T+1)
  int64_t T;
  int64_t B;
  const int64_t* offsets;  // (T*B+1)
  const void* ids;         // (N), int32 or int64
  bool ids_int64;
  int64_t N;
  const float* psw;  // (N) or nullptr
  bool mean;
};

// Checks the cheap structural facts every kernel relies on (O(T*B)): table_offsets nondecreasing in
// [0, R]; offsets nondecreasing, offsets[0] == 0, offsets[T*B] == N. Returns "" when fine.
std::string check_layout(const Bags& bags, int64_t R);

// The instruction set the hot loops use: 2 AVX-512, 1 AVX2+FMA, 0 portable C++. `level` >= 0 lowers
// (or restores) it, capped at what the CPU supports; returns the level now in use.
int set_isa(int level);

// Position of the first id outside its table (-1 when all are inside). Parallel, read-only.
int64_t find_bad_id(const Bags& bags);

// out (B, T*D) = pooled rows. Returns -1, or the position of an out-of-range id (then `out` is
// partly written but no memory outside the arrays was touched).
int64_t forward(const float* weights, int64_t R, int64_t D, const Bags& bags, float* out);

// grad_psw[k] = <grad_output[b, t], weights[row_k]> (divided by the bag size for mean pooling).
void backward_psw(const float* grad_output, const float* weights, int64_t D, const Bags& bags, float* grad_psw);

enum class Update : int { DenseGrad = 0, SGD = 1, RowwiseAdagrad = 2, Adam = 3 };

struct UpdateParams {
  Update kind;
  float lr;
  float eps;
  float beta1;
  float beta2;
  // Adam bias corrections for this step: 1 - beta1^step, 1 - beta2^step (global step count)
  float bias_correction1;
  float bias_correction2;
};

// Aggregates grad_output per unique row (duplicates summed first, in ascending position order, so the
// result is deterministic), then per unique row:
//   DenseGrad:      target[row] = g            (target: a zero-filled (R, D) gradient)
//   SGD:            w[row] -= lr * g
//   RowwiseAdagrad: state1[row] += mean(g*g); w[row] -= lr * g / (sqrt(state1[row]) + eps)
//   Adam:           m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g*g (state1 = m, state2 = v, both (R, D));
//                   w[row] -= lr * (m/bc1) / (sqrt(v/bc2) + eps)
// Rows never referenced are not touched. Ids are all checked before anything is written: returns the
// position of the first out-of-range id (nothing modified), or -1.
int64_t aggregate_update(const float* grad_output, float* target, int64_t R, int64_t D, const Bags& bags,
                         const UpdateParams& params, float* state1, float* state2);

}  // namespace recengine::embedding_bag
