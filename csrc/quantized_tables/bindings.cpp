// pybind11 bindings of the inference-table kernels: check arrays (never convert), take pointers, release the
// GIL, run. int8 rows come as int8 arrays, bfloat16 rows as int16 arrays of the same bits.
#include <cstdint>
#include <string>

#include "common.h"
#include "quantized_tables/quantized_tables.h"

namespace {

using recengine::array_ptr;
using recengine::dim_size;
namespace qt = recengine::quantized;

struct Rows {
  qt::RowFormat fmt;
  const void* data;
  const float* scale_bias = nullptr;
  int64_t N, D;
};

Rows rows_of(const std::string& format, const py::array& rows, const py::object& scale_bias) {
  Rows r;
  if (format == "int8") {
    r.fmt = qt::RowFormat::kInt8;
    r.data = array_ptr<int8_t>(rows, "rows", 2);
    if (scale_bias.is_none()) throw py::value_error("scale_bias: required for int8 rows");
  } else if (format == "bfloat16") {
    r.fmt = qt::RowFormat::kBf16;
    r.data = array_ptr<int16_t>(rows, "rows", 2);
    if (!scale_bias.is_none()) throw py::value_error("scale_bias: must be None for bfloat16 rows");
  } else {
    throw py::value_error("format: expected 'int8' or 'bfloat16', got '" + format + "'");
  }
  r.N = dim_size(rows, 0);
  r.D = dim_size(rows, 1);
  if (!scale_bias.is_none()) {
    py::array sb = scale_bias.cast<py::array>();
    r.scale_bias = array_ptr<float>(sb, "scale_bias", 2);
    if (dim_size(sb, 0) != r.N || dim_size(sb, 1) != 2) throw py::value_error("scale_bias: expected shape (N, 2)");
  }
  return r;
}

}  // namespace

void bind_quantized_tables(py::module_& m) {
  m.def(
      "qtable_topk",
      [](const std::string& format, py::array Q, py::array rows, py::object scale_bias, py::object bias,
         py::object ex_off, py::object ex_ids, py::array out_val, py::array out_id, py::array out_n) {
        const Rows r = rows_of(format, rows, scale_bias);
        const float* q = array_ptr<float>(Q, "Q", 2);
        const int64_t B = dim_size(Q, 0);
        if (dim_size(Q, 1) != r.D) throw py::value_error("Q and rows: embedding dims differ");
        if (r.N == 0) throw py::value_error("rows: empty catalog");
        float* ov = array_ptr<float>(out_val, "out_val", 2, true);
        int64_t* oi = array_ptr<int64_t>(out_id, "out_id", 2, true);
        int64_t* on = array_ptr<int64_t>(out_n, "out_n", 1, true);
        const int64_t k = dim_size(out_val, 1);
        if (dim_size(out_val, 0) != B || dim_size(out_id, 0) != B || dim_size(out_id, 1) != k ||
            dim_size(out_n, 0) != B)
          throw py::value_error("out_val, out_id, out_n: expected shapes (B, k), (B, k), (B,)");
        if (k < 1) throw py::value_error("k: must be >= 1");
        const float* pb = nullptr;
        if (!bias.is_none()) {
          py::array b = bias.cast<py::array>();
          pb = array_ptr<float>(b, "bias", 1);
          if (dim_size(b, 0) != r.N) throw py::value_error("bias: expected N entries");
        }
        const int64_t* po = nullptr;
        const int64_t* pi = nullptr;
        if (!ex_off.is_none()) {
          py::array o = ex_off.cast<py::array>();
          py::array i = ex_ids.cast<py::array>();
          po = array_ptr<int64_t>(o, "exclude_offsets", 1);
          pi = array_ptr<int64_t>(i, "exclude_ids", 1);
          if (dim_size(o, 0) != B + 1) throw py::value_error("exclude_offsets: expected B + 1 entries");
          const int64_t n_ids = dim_size(i, 0);
          if (po[0] != 0) throw py::value_error("exclude_offsets: must start at 0");
          for (int64_t b = 0; b < B; ++b)  // never read outside exclude_ids
            if (po[b] > po[b + 1] || po[b + 1] > n_ids)
              throw py::value_error("exclude_offsets: not a valid CSR over exclude_ids");
        }
        py::gil_scoped_release release;
        qt::catalog_topk(r.fmt, q, r.data, r.scale_bias, B, r.N, r.D, pb, po, pi, k, ov, oi, on);
      },
      py::arg("format"), py::arg("Q"), py::arg("rows"), py::arg("scale_bias"), py::arg("bias"),
      py::arg("exclude_offsets"), py::arg("exclude_ids"), py::arg("out_val"), py::arg("out_id"), py::arg("out_n"),
      "Catalog top-k over an int8 / bfloat16 inference table (dequantized on the fly), best first.");
  m.def(
      "qtable_embedding_bag",
      [](const std::string& format, py::array rows, py::object scale_bias, py::array table_offsets, py::array ids,
         py::array offsets, bool mean, py::array out) {
        const Rows r = rows_of(format, rows, scale_bias);
        const int64_t* to = array_ptr<int64_t>(table_offsets, "table_offsets", 1);
        const int64_t* pi = array_ptr<int64_t>(ids, "ids", 1);
        const int64_t* po = array_ptr<int64_t>(offsets, "offsets", 1);
        float* o = array_ptr<float>(out, "out", 2, true);
        const int64_t T = dim_size(table_offsets, 0) - 1;
        if (T < 1 || to[0] != 0 || to[T] != r.N)
          throw py::value_error("table_offsets: expected 0 .. N over T+1 entries");
        const int64_t bags = dim_size(offsets, 0) - 1;
        if (bags < 0 || bags % T) throw py::value_error("offsets: expected T*B + 1 entries");
        const int64_t B = bags / T;
        if (dim_size(out, 0) != B || dim_size(out, 1) != T * r.D) throw py::value_error("out: expected (B, T*D)");
        const int64_t n_ids = dim_size(ids, 0);
        if (po[0] != 0 || po[bags] != n_ids) throw py::value_error("offsets: must run from 0 to len(ids)");
        for (int64_t j = 0; j < bags; ++j) {  // bounds: the kernel never reads outside its table
          if (po[j] > po[j + 1]) throw py::value_error("offsets: must never decrease");
          const int64_t t = j / B, rows_t = to[t + 1] - to[t];
          for (int64_t p = po[j]; p < po[j + 1]; ++p)
            if (pi[p] < 0 || pi[p] >= rows_t)
              throw py::index_error("ids: id " + std::to_string(pi[p]) + " out of range for table " +
                                    std::to_string(t) + " of " + std::to_string(rows_t) + " rows");
        }
        py::gil_scoped_release release;
        qt::embedding_bag(r.fmt, r.data, r.scale_bias, r.D, to, T, B, pi, po, mean, o);
      },
      py::arg("format"), py::arg("rows"), py::arg("scale_bias"), py::arg("table_offsets"), py::arg("ids"),
      py::arg("offsets"), py::arg("mean"), py::arg("out"),
      "Pooled lookup (B, T*D) over int8 / bfloat16 stacked tables.");
}
