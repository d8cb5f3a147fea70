// Python bindings of the replay kernels: check arrays (never convert), take pointers, release the GIL.
#include <cmath>
#include <string>
#include <vector>

#include "common.h"
#include "replay.h"

namespace {

using recengine::array_ptr;
using recengine::dim_size;
namespace rp = recengine::replay;

// The two trees: 1-D float64 arrays of 2*leaves, leaves a power of two. Returns leaves.
int64_t check_trees(const py::array& sum, const py::array& mn) {
  array_ptr<double>(sum, "sum_tree", 1, true);
  array_ptr<double>(mn, "min_tree", 1, true);
  const int64_t size = dim_size(sum, 0);
  if (size < 2 || (size & (size - 1)) != 0)
    throw py::value_error("sum_tree: length must be 2*leaves with leaves a power of two, got " + std::to_string(size));
  if (dim_size(mn, 0) != size)
    throw py::value_error("min_tree: length " + std::to_string(dim_size(mn, 0)) + " != sum_tree length " +
                          std::to_string(size));
  return size / 2;
}

void tree_rebuild(py::array sum, py::array mn) {
  const int64_t leaves = check_trees(sum, mn);
  double* s = array_ptr<double>(sum, "sum_tree");
  double* m = array_ptr<double>(mn, "min_tree");
  py::gil_scoped_release release;
  rp::tree_rebuild(s, m, leaves);
}

// Returns the largest leaf value (priority**alpha) written.
double tree_update(py::array sum, py::array mn, int64_t limit, py::array idx, py::array priorities, double alpha) {
  const int64_t leaves = check_trees(sum, mn);
  double* s = array_ptr<double>(sum, "sum_tree");
  double* m = array_ptr<double>(mn, "min_tree");
  const int64_t* ix = array_ptr<int64_t>(idx, "indices", 1);
  const int64_t n = dim_size(idx, 0);
  if (priorities.ndim() != 1 || dim_size(priorities, 0) != n)
    throw py::value_error("priorities: expected shape (" + std::to_string(n) + ",) to match indices");
  if (limit < 0 || limit > leaves) throw py::value_error("limit: must be in [0, leaves]");
  if (!(alpha >= 0.0) || !std::isfinite(alpha)) throw py::value_error("alpha: must be finite and >= 0");
  double top = 0.0;
  int64_t bad = -1;
  int status;
  if (recengine::has_dtype<float>(priorities)) {
    const float* p = array_ptr<float>(priorities, "priorities", 1);
    py::gil_scoped_release release;
    status = rp::tree_update<float>(s, m, leaves, limit, ix, p, n, alpha, &top, &bad);
  } else {
    const double* p = array_ptr<double>(priorities, "priorities", 1);  // throws TypeError for other dtypes
    py::gil_scoped_release release;
    status = rp::tree_update<double>(s, m, leaves, limit, ix, p, n, alpha, &top, &bad);
  }
  const std::string at = " (at position " + std::to_string(bad) + ")";
  if (status == rp::kNotFinite) throw py::value_error("priorities: must be finite (also once raised to alpha)" + at);
  if (status == rp::kNegative) throw py::value_error("priorities: must be >= 0" + at);
  if (status == rp::kIndexOutOfRange)
    throw py::index_error("indices: index out of range [0, " + std::to_string(limit) + ")" + at);
  return top;
}

void tree_fill(py::array sum, py::array mn, int64_t capacity, int64_t start, int64_t count, double value) {
  const int64_t leaves = check_trees(sum, mn);
  double* s = array_ptr<double>(sum, "sum_tree");
  double* m = array_ptr<double>(mn, "min_tree");
  if (capacity < 1 || capacity > leaves) throw py::value_error("capacity: must be in [1, leaves]");
  if (start < 0 || start >= capacity) throw py::value_error("start: must be in [0, capacity)");
  if (count < 0 || count > capacity) throw py::value_error("count: must be in [0, capacity]");
  if (!(value >= 0.0) || !std::isfinite(value)) throw py::value_error("value: must be finite and >= 0");
  py::gil_scoped_release release;
  rp::tree_fill(s, m, leaves, capacity, start, count, value);
}

// Writes indices (int64) and importance weights (float32) for the uniforms u (float64, one per sample).
void tree_sample(py::array sum, py::array mn, py::array u, double beta, py::array out_idx, py::array out_weights) {
  const int64_t leaves = check_trees(sum, mn);
  const double* s = array_ptr<double>(sum, "sum_tree");
  const double* m = array_ptr<double>(mn, "min_tree");
  const double* uu = array_ptr<double>(u, "uniforms", 1);
  const int64_t batch = dim_size(u, 0);
  int64_t* oi = array_ptr<int64_t>(out_idx, "out_indices", 1, true);
  float* ow = array_ptr<float>(out_weights, "out_weights", 1, true);
  if (dim_size(out_idx, 0) != batch || dim_size(out_weights, 0) != batch)
    throw py::value_error("out_indices/out_weights: must have the uniforms' length");
  if (!(s[1] > 0.0) || !std::isfinite(s[1]))
    throw py::value_error("sum_tree: total priority must be finite and > 0 to sample");
  if (!(beta >= 0.0) || !std::isfinite(beta)) throw py::value_error("beta: must be finite and >= 0");
  for (int64_t b = 0; b < batch; ++b)
    if (!(uu[b] >= 0.0 && uu[b] < 1.0)) throw py::value_error("uniforms: must lie in [0, 1)");
  py::gil_scoped_release release;
  rp::tree_sample(s, m, leaves, uu, batch, beta, oi, ow);
}

// tree_sample, then gather_rows of every array in srcs at the drawn slots, in one call (a sample is
// latency-bound at this size: one crossing from Python instead of several). Allocates and returns
// (indices int64 (B,), weights float32 (B,), [dst (B, *src.shape[1:]) per src, src's dtype]).
py::tuple sample_rows(py::array sum, py::array mn, py::array u, double beta, py::list srcs) {
  const int64_t leaves = check_trees(sum, mn);
  const double* s = array_ptr<double>(sum, "sum_tree");
  const double* m = array_ptr<double>(mn, "min_tree");
  const double* uu = array_ptr<double>(u, "uniforms", 1);
  const int64_t batch = dim_size(u, 0);
  if (!(s[1] > 0.0) || !std::isfinite(s[1]))
    throw py::value_error("sum_tree: total priority must be finite and > 0 to sample");
  if (!(beta >= 0.0) || !std::isfinite(beta)) throw py::value_error("beta: must be finite and >= 0");
  for (int64_t b = 0; b < batch; ++b)
    if (!(uu[b] >= 0.0 && uu[b] < 1.0)) throw py::value_error("uniforms: must lie in [0, 1)");
  const size_t nf = py::len(srcs);
  std::vector<const uint8_t*> src_ptrs;
  std::vector<uint8_t*> dst_ptrs;
  std::vector<int64_t> row_bytes;
  py::list dsts;
  int64_t rows = leaves;  // the fewest rows of any src: every drawn slot must be below it
  for (size_t f = 0; f < nf; ++f) {
    const std::string name = "field " + std::to_string(f);
    if (!py::isinstance<py::array>(srcs[f])) throw py::type_error(name + ": expected a NumPy array");
    py::array src = srcs[f].cast<py::array>();
    if (!(src.flags() & py::array::c_style)) throw py::value_error(name + ": must be C-contiguous");
    if (src.ndim() < 1) throw py::value_error(name + ": must have a leading row dimension");
    std::vector<py::ssize_t> shape(src.shape(), src.shape() + src.ndim());
    const int64_t src_rows = shape[0];
    shape[0] = static_cast<py::ssize_t>(batch);
    py::array dst(src.dtype(), shape);
    rows = std::min(rows, src_rows);
    src_ptrs.push_back(static_cast<const uint8_t*>(src.data()));
    dst_ptrs.push_back(static_cast<uint8_t*>(dst.mutable_data()));
    row_bytes.push_back(src_rows ? static_cast<int64_t>(src.nbytes()) / src_rows : 0);
    dsts.append(dst);
  }
  py::array_t<int64_t> idx(batch);
  py::array_t<float> weights(batch);
  int64_t* oi = idx.mutable_data();
  float* ow = weights.mutable_data();
  bool in_range = true;
  {
    py::gil_scoped_release release;
    rp::tree_sample(s, m, leaves, uu, batch, beta, oi, ow);
    for (int64_t b = 0; b < batch; ++b) in_range = in_range && oi[b] < rows;
    if (in_range) rp::gather_rows(static_cast<int>(nf), src_ptrs.data(), dst_ptrs.data(), row_bytes.data(), oi, batch);
  }
  if (!in_range) throw py::index_error("srcs: a drawn slot lies beyond the rows of a field");
  return py::make_tuple(idx, weights, dsts);
}

// dsts[f][j] = srcs[f][idx[j]] for every field f: one call gathers a whole sampled batch.
void gather_rows(py::list srcs, py::array idx, py::list dsts) {
  const int64_t* ix = array_ptr<int64_t>(idx, "indices", 1);
  const int64_t n = dim_size(idx, 0);
  const size_t nf = py::len(srcs);
  if (py::len(dsts) != nf) throw py::value_error("gather_rows: srcs and dsts differ in length");
  std::vector<const uint8_t*> src_ptrs;
  std::vector<uint8_t*> dst_ptrs;
  std::vector<int64_t> row_bytes;
  for (size_t f = 0; f < nf; ++f) {
    const std::string name = "field " + std::to_string(f);
    if (!py::isinstance<py::array>(srcs[f]) || !py::isinstance<py::array>(dsts[f]))
      throw py::type_error(name + ": expected NumPy arrays");
    py::array src = srcs[f].cast<py::array>();
    py::array dst = dsts[f].cast<py::array>();
    if (!src.dtype().is(dst.dtype())) throw py::type_error(name + ": src and dst dtypes differ");
    if (!(src.flags() & py::array::c_style) || !(dst.flags() & py::array::c_style))
      throw py::value_error(name + ": arrays must be C-contiguous");
    if (!dst.writeable()) throw py::value_error(name + ": dst must be writable");
    if (src.ndim() < 1 || dst.ndim() != src.ndim() || dim_size(dst, 0) != n)
      throw py::value_error(name + ": dst must have shape (n, *src.shape[1:])");
    for (py::ssize_t d = 1; d < src.ndim(); ++d)
      if (src.shape(d) != dst.shape(d)) throw py::value_error(name + ": dst must have shape (n, *src.shape[1:])");
    const int64_t rows = dim_size(src, 0);
    for (int64_t j = 0; j < n; ++j)
      if (ix[j] < 0 || ix[j] >= rows) throw py::index_error(name + ": index out of range");
    src_ptrs.push_back(static_cast<const uint8_t*>(src.data()));
    dst_ptrs.push_back(static_cast<uint8_t*>(dst.mutable_data()));
    row_bytes.push_back(rows ? static_cast<int64_t>(src.nbytes()) / rows : 0);
  }
  py::gil_scoped_release release;
  rp::gather_rows(static_cast<int>(nf), src_ptrs.data(), dst_ptrs.data(), row_bytes.data(), ix, n);
}

// Fills the n-step outputs (see replay.h). reward: float32/float64 (capacity,); done: bool/uint8/float32.
void n_step_returns(py::array reward, py::array done, int64_t position, int64_t num_envs, int64_t n_step, double gamma,
                    py::array idx, py::array n_reward, py::array n_discount, py::array n_done, py::array n_steps,
                    py::array last) {
  const int64_t capacity = reward.ndim() == 1 ? dim_size(reward, 0) : -1;
  if (capacity < 1 || done.ndim() != 1 || dim_size(done, 0) != capacity)
    throw py::value_error("reward/done: expected two 1-D columns of one length >= 1");
  if (position < 0 || position >= capacity) throw py::value_error("position: must be in [0, capacity)");
  if (num_envs < 1 || capacity % num_envs != 0) throw py::value_error("num_envs: must divide the capacity");
  if (n_step < 1) throw py::value_error("n_step: must be >= 1");
  const int64_t* ix = array_ptr<int64_t>(idx, "indices", 1);
  const int64_t batch = dim_size(idx, 0);
  for (int64_t b = 0; b < batch; ++b)
    if (ix[b] < 0 || ix[b] >= capacity) throw py::index_error("indices: index out of range");
  auto out = [batch](auto* p, const py::array& a) {
    if (dim_size(a, 0) != batch) throw py::value_error("n-step outputs: must have the indices' length");
    return p;
  };
  float* nr = out(array_ptr<float>(n_reward, "n_reward", 1, true), n_reward);
  float* nd = out(array_ptr<float>(n_discount, "n_discount", 1, true), n_discount);
  bool* ne = out(array_ptr<bool>(n_done, "n_done", 1, true), n_done);
  int64_t* ns = out(array_ptr<int64_t>(n_steps, "n_steps", 1, true), n_steps);
  int64_t* la = out(array_ptr<int64_t>(last, "last", 1, true), last);
  const bool done_float = recengine::has_dtype<float>(done);
  if (!done_float && done.itemsize() != 1) throw py::type_error("done: expected dtype bool, uint8 or float32");
  if (!(done.flags() & py::array::c_style)) throw py::value_error("done: must be C-contiguous");
  const void* d = done.data();
  auto run = [&](auto* r) {
    py::gil_scoped_release release;
    if (done_float)
      rp::n_step_returns(r, static_cast<const float*>(d), capacity, position, num_envs, n_step, gamma, ix, batch, nr,
                         nd, ne, ns, la);
    else
      rp::n_step_returns(r, static_cast<const uint8_t*>(d), capacity, position, num_envs, n_step, gamma, ix, batch, nr,
                         nd, ne, ns, la);
  };
  if (recengine::has_dtype<float>(reward))
    run(array_ptr<float>(reward, "reward", 1));
  else
    run(array_ptr<double>(reward, "reward", 1));  // throws TypeError for other dtypes
}

// Fills td and new_priorities; returns the mean weighted Huber loss (float64).
double td_loss_forward(py::array q_sa, py::array next_q, py::array reward, py::array done, py::array discount,
                       py::array weight, float huber_delta, float alpha, float eps, py::array td,
                       py::array new_priority) {
  const float* q = array_ptr<float>(q_sa, "q_sa", 1);
  const int64_t batch = dim_size(q_sa, 0);
  auto same = [batch](const py::array& a, const char* name, bool writable) {
    float* p = array_ptr<float>(a, name, 1, writable);
    if (dim_size(a, 0) != batch) throw py::value_error(std::string(name) + ": length differs from q_sa");
    return p;
  };
  const float* nq = same(next_q, "next_q", false);
  const float* r = same(reward, "reward", false);
  const float* d = same(done, "done", false);
  const float* g = same(discount, "discount", false);
  const float* w = same(weight, "weight", false);
  float* t = same(td, "td", true);
  float* p = same(new_priority, "new_priority", true);
  if (batch < 1) throw py::value_error("q_sa: batch must be non-empty");
  py::gil_scoped_release release;
  return rp::td_loss_forward(q, nq, r, d, g, w, batch, huber_delta, alpha, eps, t, p) / static_cast<double>(batch);
}

// grad_td and grad_next_q may be None.
void td_loss_backward(float grad_loss, py::object grad_td, py::array td, py::array weight, py::array discount,
                      py::array done, float huber_delta, py::array grad_q_sa, py::object grad_next_q) {
  const float* t = array_ptr<float>(td, "td", 1);
  const int64_t batch = dim_size(td, 0);
  auto same = [batch](const py::array& a, const char* name, bool writable) {
    float* p = array_ptr<float>(a, name, 1, writable);
    if (dim_size(a, 0) != batch) throw py::value_error(std::string(name) + ": length differs from td");
    return p;
  };
  const float* w = same(weight, "weight", false);
  const float* g = same(discount, "discount", false);
  const float* d = same(done, "done", false);
  float* gq = same(grad_q_sa, "grad_q_sa", true);
  const float* gt = grad_td.is_none() ? nullptr : same(grad_td.cast<py::array>(), "grad_td", false);
  float* gn = grad_next_q.is_none() ? nullptr : same(grad_next_q.cast<py::array>(), "grad_next_q", true);
  py::gil_scoped_release release;
  rp::td_loss_backward(grad_loss, gt, t, w, g, d, batch, huber_delta, gq, gn);
}

}  // namespace

void bind_replay(py::module_& m) {
  m.def("replay_tree_rebuild", &tree_rebuild, py::arg("sum_tree"), py::arg("min_tree"),
        "Recompute every internal node of the sum- and min-tree from their leaves.");
  m.def("replay_tree_update", &tree_update, py::arg("sum_tree"), py::arg("min_tree"), py::arg("limit"),
        py::arg("indices"), py::arg("priorities"), py::arg("alpha"),
        "Validate, then set leaves to priorities**alpha and fix ancestors; returns the largest leaf written.");
  m.def("replay_tree_fill", &tree_fill, py::arg("sum_tree"), py::arg("min_tree"), py::arg("capacity"), py::arg("start"),
        py::arg("count"), py::arg("value"),
        "Set `count` leaves from `start` (wrapping at capacity) to `value` and fix ancestors.");
  m.def("replay_tree_sample", &tree_sample, py::arg("sum_tree"), py::arg("min_tree"), py::arg("uniforms"),
        py::arg("beta"), py::arg("out_indices"), py::arg("out_weights"),
        "Stratified proportional sampling with normalised importance weights.");
  m.def("replay_sample_rows", &sample_rows, py::arg("sum_tree"), py::arg("min_tree"), py::arg("uniforms"),
        py::arg("beta"), py::arg("srcs"),
        "replay_tree_sample then replay_gather_rows of srcs at the drawn slots, in one call; returns "
        "(indices, weights, [rows per src]).");
  m.def("replay_gather_rows", &gather_rows, py::arg("srcs"), py::arg("indices"), py::arg("dsts"),
        "dsts[f][j] = srcs[f][indices[j]] for every field.");
  m.def("replay_n_step_returns", &n_step_returns, py::arg("reward"), py::arg("done"), py::arg("position"),
        py::arg("num_envs"), py::arg("n_step"), py::arg("gamma"), py::arg("indices"), py::arg("n_reward"),
        py::arg("n_discount"), py::arg("n_done"), py::arg("n_steps"), py::arg("last"),
        "n-step returns from the ring buffer's reward and done columns.");
  m.def("td_loss_forward", &td_loss_forward, py::arg("q_sa"), py::arg("next_q"), py::arg("reward"), py::arg("done"),
        py::arg("discount"), py::arg("weight"), py::arg("huber_delta"), py::arg("alpha"), py::arg("eps"), py::arg("td"),
        py::arg("new_priority"), "Fused TD loss forward: fills td and new_priority, returns the loss.");
  m.def("td_loss_backward", &td_loss_backward, py::arg("grad_loss"), py::arg("grad_td"), py::arg("td"),
        py::arg("weight"), py::arg("discount"), py::arg("done"), py::arg("huber_delta"), py::arg("grad_q_sa"),
        py::arg("grad_next_q"), "Fused TD loss backward.");
}
