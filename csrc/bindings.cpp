// recengine._C: the CPU kernels of every operator family, one pybind11 module, plus the two process-wide
// facts every family shares: the OpenMP team size and the huge-page advice for large buffers.
#include <omp.h>

#include <cstdint>

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

#include "common.h"
#include "portable.h"

namespace {

// Ask Linux to back a large, not yet touched buffer with transparent huge pages (THP in "madvise" mode).
// Tables and replay columns are read at random rows: with 4 KiB pages nearly every row costs a TLB miss.
// Advised before the first touch, the pages fault in huge. A hint: returns whether it was taken (false
// where unsupported).
bool advise_huge_pages(const py::array& a) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = reinterpret_cast<uintptr_t>(a.data());
  const uintptr_t first = (begin + page - 1) / page * page;
  const uintptr_t end = (begin + static_cast<uintptr_t>(a.nbytes())) / page * page;
  if (end <= first) return false;
  return madvise(reinterpret_cast<void*>(first), end - first, MADV_HUGEPAGE) == 0;
#else
  return false;
#endif
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "recengine CPU kernels (C++17, OpenMP, NumPy buffers; no libtorch)";
  m.def("num_threads", []() { return omp_get_max_threads(); }, "OpenMP threads the kernels use.");
  m.def(
      "set_num_threads",
      [](int n) {
        if (n < 1) throw py::value_error("set_num_threads: n must be >= 1");
        omp_set_num_threads(n);
      },
      py::arg("n"), "Set the OpenMP threads the kernels use.");
  m.def("advise_huge_pages", &advise_huge_pages, py::arg("array"),
        "Hint transparent huge pages for a large, untouched array's memory (Linux); True if applied.");
  m.def(
      "portable_forced", []() { return recengine::portable_forced(); },
      "Whether RECENGINE_PORTABLE (read once, at load) sends every kernel down its portable path.");
  m.def(
      "vector_isa", []() { return recengine::vector_level(); },
      "The build of the vector loops in use: 2 AVX-512, 1 AVX2, 0 baseline (the CPU's, unless RECENGINE_PORTABLE).");
  // Each family registers its kernels; add the line when csrc/<family>/bindings.cpp exists.
  bind_embedding_bag(m);
  bind_policy(m);
  bind_replay(m);
  bind_quantized_tables(m);
}
