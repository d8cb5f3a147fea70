// Python bindings of the embedding bag kernels: check the arrays (never convert), take the pointers,
// release the GIL, run. recengine.ops.embedding_bag has already validated everything; these checks
// are the cheap last line that keeps a wrong call from touching memory outside the arrays.
#include <cstdint>
#include <string>

#include "common.h"
#include "embedding_bag/embedding_bag.h"

namespace eb = recengine::embedding_bag;
using recengine::array_ptr;
using recengine::dim_size;

namespace {

// The jagged input as kernel arguments; checks shapes, dtypes and the O(T*B) layout facts.
eb::Bags make_bags(const py::array& table_offsets, const py::array& ids, const py::array& offsets,
                   const py::object& psw, bool mean, int64_t R) {
  eb::Bags bags{};
  bags.table_offsets = array_ptr<int64_t>(table_offsets, "table_offsets", 1);
  bags.T = dim_size(table_offsets, 0) - 1;
  if (bags.T < 1) throw py::value_error("table_offsets: needs at least 2 entries (one table)");
  bags.offsets = array_ptr<int64_t>(offsets, "offsets", 1);
  const int64_t n_off = dim_size(offsets, 0);
  if (n_off < 1 || (n_off - 1) % bags.T != 0)
    throw py::value_error("offsets: length must be T*B + 1, got " + std::to_string(n_off));
  bags.B = (n_off - 1) / bags.T;
  if (recengine::has_dtype<int64_t>(ids)) {
    bags.ids = array_ptr<int64_t>(ids, "ids", 1);
    bags.ids_int64 = true;
  } else {
    bags.ids = array_ptr<int32_t>(ids, "ids", 1);
    bags.ids_int64 = false;
  }
  bags.N = dim_size(ids, 0);
  bags.psw = nullptr;
  if (!psw.is_none()) {
    py::array a = psw.cast<py::array>();
    bags.psw = array_ptr<float>(a, "per_sample_weights", 1);
    if (dim_size(a, 0) != bags.N) throw py::value_error("per_sample_weights: must have len(ids) entries");
  }
  bags.mean = mean;
  const std::string err = eb::check_layout(bags, R);
  if (!err.empty()) throw py::value_error(err);
  return bags;
}

[[noreturn]] void throw_bad_id(const eb::Bags& bags, int64_t pos) {
  int64_t j = 0;  // the bag holding position pos: last j with offsets[j] <= pos < offsets[j+1]
  int64_t lo = 0, hi = bags.T * bags.B - 1;
  while (lo < hi) {
    int64_t mid = lo + (hi - lo + 1) / 2;
    if (bags.offsets[mid] <= pos)
      lo = mid;
    else
      hi = mid - 1;
  }
  j = lo;
  const int64_t t = j / bags.B;
  const int64_t id =
      bags.ids_int64 ? static_cast<const int64_t*>(bags.ids)[pos] : static_cast<const int32_t*>(bags.ids)[pos];
  throw py::index_error("ids[" + std::to_string(pos) + "] = " + std::to_string(id) + " is outside table " +
                        std::to_string(t) + " (" + std::to_string(bags.table_offsets[t + 1] - bags.table_offsets[t]) +
                        " rows)");
}

void check_rows(const py::array& a, const char* name, int64_t R, int64_t D) {
  if (dim_size(a, 0) != R || dim_size(a, 1) != D)
    throw py::value_error(std::string(name) + ": expected shape (" + std::to_string(R) + ", " + std::to_string(D) +
                          ")");
}

}  // namespace

void bind_embedding_bag(py::module_& m) {
  m.def(
      "embedding_bag_forward",
      [](const py::array& weights, const py::array& table_offsets, const py::array& ids, const py::array& offsets,
         const py::object& psw, bool mean, const py::array& out) {
        const float* w = array_ptr<float>(weights, "weights", 2);
        const int64_t R = dim_size(weights, 0), D = dim_size(weights, 1);
        eb::Bags bags = make_bags(table_offsets, ids, offsets, psw, mean, R);
        float* o = array_ptr<float>(out, "out", 2, true);
        if (dim_size(out, 0) != bags.B || dim_size(out, 1) != bags.T * D)
          throw py::value_error("out: expected shape (B, T*D)");
        int64_t bad;
        {
          py::gil_scoped_release release;
          bad = eb::forward(w, R, D, bags, o);
        }
        if (bad >= 0) throw_bad_id(bags, bad);
      },
      py::arg("weights"), py::arg("table_offsets"), py::arg("ids"), py::arg("offsets"), py::arg("per_sample_weights"),
      py::arg("mean"), py::arg("out"), "out (B, T*D) = pooled rows (sum, or mean when `mean`).");

  m.def("embedding_bag_isa", &eb::set_isa, py::arg("level") = -1,
        "Instruction set of the embedding kernels (2 AVX-512, 1 AVX2, 0 portable); level >= 0 sets it, capped "
        "at what the CPU supports (tests use it to cover every variant). Returns the level in use.");

  m.def(
      "embedding_bag_find_bad_id",
      [](const py::array& table_offsets, const py::array& ids, const py::array& offsets, int64_t num_rows) {
        eb::Bags bags = make_bags(table_offsets, ids, offsets, py::none(), false, num_rows);
        py::gil_scoped_release release;
        return eb::find_bad_id(bags);
      },
      py::arg("table_offsets"), py::arg("ids"), py::arg("offsets"), py::arg("num_rows") = INT64_MAX,
      "Checks the layout (ValueError naming the argument: table_offsets within [0, num_rows] and "
      "nondecreasing, offsets nondecreasing from 0 to len(ids)); returns the position of the first id outside "
      "its table, or -1.");

  m.def(
      "embedding_bag_backward_psw",
      [](const py::array& grad_output, const py::array& weights, const py::array& table_offsets, const py::array& ids,
         const py::array& offsets, bool mean, const py::array& grad_psw) {
        const float* w = array_ptr<float>(weights, "weights", 2);
        const int64_t R = dim_size(weights, 0), D = dim_size(weights, 1);
        eb::Bags bags = make_bags(table_offsets, ids, offsets, py::none(), mean, R);
        const float* g = array_ptr<float>(grad_output, "grad_output", 2);
        check_rows(grad_output, "grad_output", bags.B, bags.T * D);
        float* gp = array_ptr<float>(grad_psw, "grad_psw", 1, true);
        if (dim_size(grad_psw, 0) != bags.N) throw py::value_error("grad_psw: must have len(ids) entries");
        py::gil_scoped_release release;
        eb::backward_psw(g, w, D, bags, gp);
      },
      py::arg("grad_output"), py::arg("weights"), py::arg("table_offsets"), py::arg("ids"), py::arg("offsets"),
      py::arg("mean"), py::arg("grad_psw"), "Gradient of the pooled output w.r.t. the per-sample weights.");

  m.def(
      "embedding_bag_update",
      [](const py::array& grad_output, const py::array& target, const py::array& table_offsets, const py::array& ids,
         const py::array& offsets, const py::object& psw, bool mean, int kind, const py::array& state1,
         const py::array& state2, double lr, double eps, double beta1, double beta2, double bias_correction1,
         double bias_correction2) {
        if (kind < 0 || kind > 3)
          throw py::value_error("kind: expected 0 (dense grad), 1 (SGD), 2 (row-wise Adagrad) or 3 (Adam)");
        float* tgt = array_ptr<float>(target, "target", 2, true);
        const int64_t R = dim_size(target, 0), D = dim_size(target, 1);
        eb::Bags bags = make_bags(table_offsets, ids, offsets, psw, mean, R);
        const float* g = array_ptr<float>(grad_output, "grad_output", 2);
        check_rows(grad_output, "grad_output", bags.B, bags.T * D);
        float* s1 = nullptr;
        float* s2 = nullptr;
        const eb::Update k = static_cast<eb::Update>(kind);
        if (k == eb::Update::RowwiseAdagrad) {
          s1 = array_ptr<float>(state1, "state1", 1, true);
          if (dim_size(state1, 0) != R) throw py::value_error("state1: row-wise Adagrad state must have R entries");
        } else if (k == eb::Update::Adam) {
          s1 = array_ptr<float>(state1, "state1", 2, true);
          s2 = array_ptr<float>(state2, "state2", 2, true);
          check_rows(state1, "state1", R, D);
          check_rows(state2, "state2", R, D);
        }
        eb::UpdateParams params{k,
                                static_cast<float>(lr),
                                static_cast<float>(eps),
                                static_cast<float>(beta1),
                                static_cast<float>(beta2),
                                static_cast<float>(bias_correction1),
                                static_cast<float>(bias_correction2)};
        int64_t bad;
        {
          py::gil_scoped_release release;
          bad = eb::aggregate_update(g, tgt, R, D, bags, params, s1, s2);
        }
        if (bad >= 0) throw_bad_id(bags, bad);
      },
      py::arg("grad_output"), py::arg("target"), py::arg("table_offsets"), py::arg("ids"), py::arg("offsets"),
      py::arg("per_sample_weights"), py::arg("mean"), py::arg("kind"), py::arg("state1"), py::arg("state2"),
      py::arg("lr"), py::arg("eps"), py::arg("beta1"), py::arg("beta2"), py::arg("bias_correction1"),
      py::arg("bias_correction2"),
      "Aggregate grad_output per unique row, then write the dense gradient (kind 0) into `target` or update the "
      "rows of `target` (the weights) and their state in place (1 SGD, 2 row-wise Adagrad, 3 Adam).");
}
