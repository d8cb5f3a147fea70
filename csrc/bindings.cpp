// recengine._C: the CPU kernels of every operator family, one pybind11 module.
#include <omp.h>

#include "common.h"

PYBIND11_MODULE(_C, m) {
  m.doc() = "recengine CPU kernels (C++17, OpenMP, NumPy buffers; no libtorch)";
  m.def("num_threads", []() { return omp_get_max_threads(); }, "OpenMP threads the kernels use.");
  m.def(
      "set_num_threads", [](int n) {
        if (n < 1) throw py::value_error("set_num_threads: n must be >= 1");
        omp_set_num_threads(n);
      },
      py::arg("n"), "Set the OpenMP threads the kernels use.");
  // Each family registers its kernels; add the line when csrc/<family>/bindings.cpp exists.
  bind_embedding_bag(m);
  bind_policy(m);
  bind_replay(m);
}
