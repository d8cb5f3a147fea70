// pybind11 bindings of the policy kernels: check arrays, take pointers, release the GIL, run a sweep.
#include <cstdint>

#include "common.h"

namespace recengine::policy {
void heaps_finish(int64_t B, int64_t k, float* heap_val, int64_t* heap_id, float* heap_aux, const int64_t* heap_n);
void lse_finish(int64_t B, const float* m, const float* s, float* lse);
void topk_sweep(const float* Q, const float* E, int64_t B, int64_t N, int64_t D, const float* bias, float inv_temp,
                const int64_t* ex_off, const int64_t* ex_ids, int64_t k, float* heap_val, int64_t* heap_id,
                int64_t* heap_n);
void lse_sweep(const float* Q, const float* E, int64_t B, int64_t N, int64_t D, const float* bias, float inv_temp,
               const int64_t* ex_off, const int64_t* ex_ids, float* m, float* s, const int64_t* target,
               float* x_target);
void sample_sweep(const float* Q, const float* E, int64_t B, int64_t N, int64_t D, const float* bias, float inv_temp,
                  const int64_t* ex_off, const int64_t* ex_ids, uint32_t seed_key, int64_t k, float* heap_key,
                  int64_t* heap_id, float* heap_x, int64_t* heap_n, float* m, float* s);
int blas_found();
bool topk_direct_available();
bool topk_bf16_available();
void set_topk_bf16(bool on);
void ce_backward_sweep(const float* Q, const float* E, int64_t B, int64_t N, int64_t D, const float* bias,
                       float inv_temp, const int64_t* ex_off, const int64_t* ex_ids, const float* lse,
                       const int64_t* target, const float* p_scale, const float* t_scale, float* dQ, float* dE,
                       float* dbias);
void force_portable_gemm(bool on);
bool portable_gemm_forced();
void set_sweep_shape(int64_t rows, int64_t items);
}  // namespace recengine::policy

namespace {

using recengine::array_ptr;
using recengine::dim_size;
namespace pk = recengine::policy;

// Q (B x D) and E (N x D) for a whole-catalog sweep, with the optional bias (N,) and exclusion CSR.
struct Catalog {
  const float* Q;
  const float* E;
  int64_t B, N, D;
  const float* bias = nullptr;
  const int64_t* ex_off = nullptr;
  const int64_t* ex_ids = nullptr;
};

Catalog catalog(const py::array& Q, const py::array& E, const py::object& bias, const py::object& ex_off,
                const py::object& ex_ids) {
  Catalog c;
  c.Q = array_ptr<float>(Q, "Q", 2);
  c.E = array_ptr<float>(E, "E", 2);
  c.B = dim_size(Q, 0);
  c.N = dim_size(E, 0);
  c.D = dim_size(Q, 1);
  if (dim_size(E, 1) != c.D) throw py::value_error("Q and E: embedding dims differ");
  if (c.N == 0) throw py::value_error("E: empty catalog");
  if (!bias.is_none()) {
    py::array b = bias.cast<py::array>();
    c.bias = array_ptr<float>(b, "bias", 1);
    if (dim_size(b, 0) != c.N) throw py::value_error("bias: expected N entries");
  }
  if (!ex_off.is_none()) {
    py::array o = ex_off.cast<py::array>();
    py::array i = ex_ids.cast<py::array>();
    c.ex_off = array_ptr<int64_t>(o, "exclude_offsets", 1);
    c.ex_ids = array_ptr<int64_t>(i, "exclude_ids", 1);
    if (dim_size(o, 0) != c.B + 1) throw py::value_error("exclude_offsets: expected B + 1 entries");
    const int64_t n_ids = dim_size(i, 0);
    for (int64_t b = 0; b < c.B; ++b)  // O(B): never read outside exclude_ids
      if (c.ex_off[b] < 0 || c.ex_off[b] > c.ex_off[b + 1] || c.ex_off[b + 1] > n_ids)
        throw py::value_error("exclude_offsets: not a valid CSR over exclude_ids");
  }
  return c;
}

void check_counts(const int64_t* n, int64_t B, int64_t k) {
  for (int64_t b = 0; b < B; ++b)
    if (n[b] < 0 || n[b] > k) throw py::value_error("heap_n: count out of range");
}

void check_rows(const py::array& a, const char* name, int64_t rows, int64_t cols = -1) {
  if (dim_size(a, 0) != rows || (cols >= 0 && (a.ndim() != 2 || dim_size(a, 1) != cols)))
    throw py::value_error(std::string(name) + ": wrong shape for the per-row state");
}

}  // namespace

void bind_policy(py::module_& m) {
  m.def(
      "policy_heaps_finish",
      [](py::array heap_val, py::array heap_id, py::object heap_aux, py::array heap_n) {
        const int64_t B = dim_size(heap_n, 0);
        const int64_t k = dim_size(heap_val, 1);
        float* hv = array_ptr<float>(heap_val, "heap_val", 2, true);
        int64_t* hi = array_ptr<int64_t>(heap_id, "heap_id", 2, true);
        const int64_t* hn = array_ptr<int64_t>(heap_n, "heap_n", 1);
        check_rows(heap_val, "heap_val", B, k);
        check_rows(heap_id, "heap_id", B, k);
        float* ha = nullptr;
        if (!heap_aux.is_none()) {
          py::array a = heap_aux.cast<py::array>();
          ha = array_ptr<float>(a, "heap_aux", 2, true);
          check_rows(a, "heap_aux", B, k);
        }
        check_counts(hn, B, k);
        py::gil_scoped_release release;
        pk::heaps_finish(B, k, hv, hi, ha, hn);
      },
      "Sort each row's heap best first (value descending, id ascending).");
  m.def(
      "policy_lse_finish",
      [](py::array mx, py::array sm, py::array lse) {
        const int64_t B = dim_size(mx, 0);
        const float* pm = array_ptr<float>(mx, "m", 1);
        const float* ps = array_ptr<float>(sm, "s", 1);
        float* pl = array_ptr<float>(lse, "lse", 1, true);
        check_rows(sm, "s", B);
        check_rows(lse, "lse", B);
        py::gil_scoped_release release;
        pk::lse_finish(B, pm, ps, pl);
      },
      "lse = m + log(s) per row.");
  m.def(
      "policy_topk",
      [](py::array Q, py::array E, py::object bias, float inv_temp, py::object ex_off, py::object ex_ids,
         py::array heap_val, py::array heap_id, py::array heap_n) {
        Catalog c = catalog(Q, E, bias, ex_off, ex_ids);
        const int64_t k = dim_size(heap_val, 1);
        float* hv = array_ptr<float>(heap_val, "heap_val", 2, true);
        int64_t* hi = array_ptr<int64_t>(heap_id, "heap_id", 2, true);
        int64_t* hn = array_ptr<int64_t>(heap_n, "heap_n", 1, true);
        check_rows(heap_val, "heap_val", c.B, k);
        check_rows(heap_id, "heap_id", c.B, k);
        check_rows(heap_n, "heap_n", c.B);
        check_counts(hn, c.B, k);
        py::gil_scoped_release release;
        pk::topk_sweep(c.Q, c.E, c.B, c.N, c.D, c.bias, inv_temp, c.ex_off, c.ex_ids, k, hv, hi, hn);
      },
      "Top-k heaps of every row over the whole catalog (one parallel sweep).");
  m.def(
      "policy_lse",
      [](py::array Q, py::array E, py::object bias, float inv_temp, py::object ex_off, py::object ex_ids, py::array mx,
         py::array sm, py::object target, py::object x_target) {
        Catalog c = catalog(Q, E, bias, ex_off, ex_ids);
        float* pm = array_ptr<float>(mx, "m", 1, true);
        float* ps = array_ptr<float>(sm, "s", 1, true);
        check_rows(mx, "m", c.B);
        check_rows(sm, "s", c.B);
        const int64_t* pt = nullptr;
        float* px = nullptr;
        if (!target.is_none()) {
          py::array t = target.cast<py::array>();
          py::array xt = x_target.cast<py::array>();
          pt = array_ptr<int64_t>(t, "target", 1);
          px = array_ptr<float>(xt, "x_target", 1, true);
          check_rows(t, "target", c.B);
          check_rows(xt, "x_target", c.B);
        }
        py::gil_scoped_release release;
        pk::lse_sweep(c.Q, c.E, c.B, c.N, c.D, c.bias, inv_temp, c.ex_off, c.ex_ids, pm, ps, pt, px);
      },
      "Online logsumexp (m, s) of every row over the whole catalog, and the target's logit.");
  m.def(
      "policy_sample",
      [](py::array Q, py::array E, py::object bias, float inv_temp, py::object ex_off, py::object ex_ids,
         uint32_t seed_key, py::array heap_key, py::array heap_id, py::array heap_x, py::array heap_n, py::array mx,
         py::array sm) {
        Catalog c = catalog(Q, E, bias, ex_off, ex_ids);
        const int64_t k = dim_size(heap_key, 1);
        float* hk = array_ptr<float>(heap_key, "heap_key", 2, true);
        int64_t* hi = array_ptr<int64_t>(heap_id, "heap_id", 2, true);
        float* hx = array_ptr<float>(heap_x, "heap_x", 2, true);
        int64_t* hn = array_ptr<int64_t>(heap_n, "heap_n", 1, true);
        float* pm = array_ptr<float>(mx, "m", 1, true);
        float* ps = array_ptr<float>(sm, "s", 1, true);
        check_rows(heap_key, "heap_key", c.B, k);
        check_rows(heap_id, "heap_id", c.B, k);
        check_rows(heap_x, "heap_x", c.B, k);
        check_rows(heap_n, "heap_n", c.B);
        check_rows(mx, "m", c.B);
        check_rows(sm, "s", c.B);
        check_counts(hn, c.B, k);
        py::gil_scoped_release release;
        pk::sample_sweep(c.Q, c.E, c.B, c.N, c.D, c.bias, inv_temp, c.ex_off, c.ex_ids, seed_key, k, hk, hi, hx, hn, pm,
                         ps);
      },
      "Gumbel-top-k heaps and online logsumexp of every row over the whole catalog.");
  m.def(
      "policy_ce_backward",
      [](py::array Q, py::array E, py::object bias, float inv_temp, py::object ex_off, py::object ex_ids, py::array lse,
         py::array target, py::array p_scale, py::array t_scale, py::object dQ, py::object dE, py::object dbias) {
        Catalog c = catalog(Q, E, bias, ex_off, ex_ids);
        const float* pl = array_ptr<float>(lse, "lse", 1);
        const int64_t* pt = array_ptr<int64_t>(target, "target", 1);
        const float* pp = array_ptr<float>(p_scale, "p_scale", 1);
        const float* ps = array_ptr<float>(t_scale, "t_scale", 1);
        check_rows(lse, "lse", c.B);
        check_rows(target, "target", c.B);
        check_rows(p_scale, "p_scale", c.B);
        check_rows(t_scale, "t_scale", c.B);
        auto out = [](const py::object& o, const char* name, int64_t rows, int64_t cols) -> float* {
          if (o.is_none()) return nullptr;
          py::array a = o.cast<py::array>();
          float* p = array_ptr<float>(a, name, cols < 0 ? 1 : 2, true);
          check_rows(a, name, rows, cols);
          return p;
        };
        float* pdq = out(dQ, "dQ", c.B, c.D);
        float* pde = out(dE, "dE", c.N, c.D);
        float* pdb = out(dbias, "dbias", c.N, -1);
        py::gil_scoped_release release;
        pk::ce_backward_sweep(c.Q, c.E, c.B, c.N, c.D, c.bias, inv_temp, c.ex_off, c.ex_ids, pl, pt, pp, ps, pdq, pde,
                              pdb);
      },
      "Cross-entropy backward over the whole catalog: accumulates into dQ, dE, dbias (each may be None).");
  m.def(
      "policy_blas_found", []() { return pk::blas_found() != 0; },
      "Whether the tile GEMM uses the process's BLAS sgemm_ (else a portable loop).");
  m.def(
      "policy_force_portable_gemm", [](bool on) { pk::force_portable_gemm(on); },
      "Testing: use the portable tile GEMM even where the BLAS is found.");
  m.def(
      "policy_topk_bf16", []() { return pk::topk_bf16_available(); },
      "Whether catalog top-k of 48+ rows prefilters with bf16 scores (AVX512-BF16 CPUs; exact either way).");
  m.def(
      "policy_topk_direct", []() { return pk::topk_direct_available(); },
      "Whether catalog top-k of a few rows reads the table with direct AVX-512 dot products (else the tile GEMM).");
  m.def(
      "policy_portable_gemm", []() { return pk::portable_gemm_forced() || pk::blas_found() == 0; },
      "Whether the tile GEMM runs the portable loop now (no BLAS found, forced by a test or RECENGINE_PORTABLE).");
  m.def(
      "policy_set_topk_bf16", [](bool on) { pk::set_topk_bf16(on); },
      "Allow (default) or forbid the bf16 prefilter of top-k (tests cover both paths).");
  m.def(
      "policy_set_sweep_shape", [](int64_t rows, int64_t items) { pk::set_sweep_shape(rows, items); },
      "Testing: fix the sweeps' tile to rows x items (0, 0: automatic).");
}
