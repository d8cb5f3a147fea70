// Shared helpers for the bindings: array checks that never convert, and the thread knobs.
//
// Kernels (csrc/<family>/*.cpp) take raw pointers and sizes. The bindings
// (csrc/<family>/bindings.cpp) turn NumPy arrays (zero-copy views of CPU tensors) into those
// pointers with the checks below, then release the GIL and call the kernel.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace py = pybind11;

namespace recengine {

template <typename T>
constexpr char dtype_kind() {
  if constexpr (std::is_same_v<T, bool>)
    return 'b';
  else if constexpr (std::is_floating_point_v<T>)
    return 'f';
  else if constexpr (std::is_signed_v<T>)
    return 'i';
  else
    return 'u';
}

template <typename T>
const char* dtype_name() {
  if constexpr (std::is_same_v<T, float>)
    return "float32";
  else if constexpr (std::is_same_v<T, double>)
    return "float64";
  else if constexpr (std::is_same_v<T, int64_t>)
    return "int64";
  else if constexpr (std::is_same_v<T, int32_t>)
    return "int32";
  else if constexpr (std::is_same_v<T, bool>)
    return "bool";
  else if constexpr (std::is_same_v<T, uint8_t>)
    return "uint8";
  else
    return "unknown";
}

// True when `a` holds elements of type T (checked by kind and size, never by conversion).
template <typename T>
bool has_dtype(const py::array& a) {
  return a.dtype().kind() == dtype_kind<T>() && a.itemsize() == static_cast<py::ssize_t>(sizeof(T));
}

// Typed pointer into a C-contiguous array of T. Throws TypeError/ValueError naming `name`.
// py::array_t<T, forcecast> would silently copy a non-conforming array, and an in-place update
// would then land in the copy; this checks instead.
template <typename T>
T* array_ptr(const py::array& a, const char* name, int ndim = -1, bool writable = false) {
  if (!has_dtype<T>(a))
    throw py::type_error(std::string(name) + ": expected dtype " + dtype_name<T>() + ", got " +
                         std::string(py::str(a.dtype())));
  if (ndim >= 0 && a.ndim() != ndim)
    throw py::value_error(std::string(name) + ": expected " + std::to_string(ndim) + " dimensions, got " +
                          std::to_string(a.ndim()));
  if (!(a.flags() & py::array::c_style)) throw py::value_error(std::string(name) + ": must be C-contiguous");
  if (writable && !a.writeable()) throw py::value_error(std::string(name) + ": must be writable");
  return static_cast<T*>(const_cast<void*>(a.data()));
}

// Size of dimension `dim` (0 for a 0-d array asked for dim 0 is an error upstream).
inline int64_t dim_size(const py::array& a, int dim) { return static_cast<int64_t>(a.shape(dim)); }

}  // namespace recengine

// One registration function per operator family, each defined in csrc/<family>/bindings.cpp.
void bind_embedding_bag(py::module_& m);
void bind_policy(py::module_& m);
void bind_replay(py::module_& m);
void bind_quantized_tables(py::module_& m);
