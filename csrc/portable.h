// RECENGINE_PORTABLE: one switch that sends every CPU kernel down its portable path.
//
// Read once, the first time a kernel asks (the extension's load in practice): set to anything but "" or "0",
// the embedding kernels use their portable C++ loops instead of the AVX-512/AVX2 bodies, catalog top-k skips
// the AVX512-BF16 prefilter, the catalog sweeps' tile GEMM uses the portable loop instead of the process's BLAS,
// and the vector loops (RECENGINE_VECTOR_CLONES below) run their baseline build instead of the AVX-512 or AVX2
// one (the AVX-512 build contracts multiply-adds into FMA, so its floats differ in the last bits). Header-only
// and free of pybind11, so the kernels include it.
#pragma once

#include <cstdlib>
#include <cstring>
#include <utility>

namespace recengine {

inline bool portable_forced() {
  static const bool on = [] {
    const char* v = std::getenv("RECENGINE_PORTABLE");
    return v != nullptr && v[0] != '\0' && std::strcmp(v, "0") != 0;
  }();
  return on;
}

// The build of the vector loops in use: 2 AVX-512, 1 AVX2, 0 the baseline (what the CPU has, unless
// RECENGINE_PORTABLE), decided once.
inline int vector_level() {
#if defined(__x86_64__) && defined(__GNUC__)
  static const int level = portable_forced()                   ? 0
                           : __builtin_cpu_supports("avx512f") ? 2
                           : __builtin_cpu_supports("avx2")    ? 1
                                                               : 0;
  return level;
#else
  return 0;
#endif
}

}  // namespace recengine

// RECENGINE_VECTOR_CLONES(name) defines `void name(args...)` from `name##_body` (a void, always_inline function):
// the body compiled for AVX-512, for AVX2 and for the baseline, called by vector_level(). GCC's target_clones
// does the same but picks the build when the library loads, where RECENGINE_PORTABLE cannot reach it.
#if defined(__x86_64__) && defined(__GNUC__)
#define RECENGINE_VECTOR_CLONES(name)                                \
  template <typename... A>                                           \
  __attribute__((target("avx512f"))) void name##_avx512f(A&&... a) { \
    name##_body(std::forward<A>(a)...);                              \
  }                                                                  \
  template <typename... A>                                           \
  __attribute__((target("avx2"))) void name##_avx2(A&&... a) {       \
    name##_body(std::forward<A>(a)...);                              \
  }                                                                  \
  template <typename... A>                                           \
  void name##_baseline(A&&... a) {                                   \
    name##_body(std::forward<A>(a)...);                              \
  }                                                                  \
  template <typename... A>                                           \
  void name(A&&... a) {                                              \
    const int level = recengine::vector_level();                     \
    if (level == 2)                                                  \
      name##_avx512f(std::forward<A>(a)...);                         \
    else if (level == 1)                                             \
      name##_avx2(std::forward<A>(a)...);                            \
    else                                                             \
      name##_baseline(std::forward<A>(a)...);                        \
  }
#else
#define RECENGINE_VECTOR_CLONES(name)   \
  template <typename... A>              \
  void name(A&&... a) {                 \
    name##_body(std::forward<A>(a)...); \
  }
#endif
