// What the CPU running the tests has, for tests of kernels that take an AVX-512 path where it
// exists and decline elsewhere.
#pragma once

namespace bnlab::testing {

inline bool cpu_has_avx512() {
#if defined(__x86_64__)
  return __builtin_cpu_supports("avx512f");
#else
  return false;
#endif
}

}  // namespace bnlab::testing
