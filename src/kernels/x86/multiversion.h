// Run-time choice of instruction set for the hot loops. BNLAB_MULTIVERSION defines a function as
// three clones of one always-inline body, compiled for x86-64-v4 (AVX-512 F/BW/DQ/VL with FMA),
// x86-64-v3 (AVX2 with FMA) and baseline x86-64 (SSE2), and a dispatcher that calls the one
// cpu_isa() names (cpu_isa.h): the best the CPU has unless BNLAB_MAX_CPU_ISA or a test caps it.
// So one binary is fast on this machine, correct on a CPU without AVX-512, and every clone can
// be run here. (GCC's target_clones chose the same clones, but in the loader, beyond reach.)
//
//   BNLAB_INLINE void row_sum_body(const float* x, int64_t n, double* sum) { ... }
//   BNLAB_MULTIVERSION(void, row_sum, (const float* x, int64_t n, double* sum), (x, n, sum), row_sum_body)
#pragma once

#include "kernels/x86/cpu_isa.h"

// For a body shared by the clones (and by the plain double templates): it must be inlined into
// each clone to be compiled for the clone's instruction set.
#define BNLAB_INLINE inline __attribute__((always_inline))

// Around code that uses GCC 12's own AVX-512 conversion, extract or reduction intrinsics: they
// start from an undefined vector, and GCC warns about it in the caller. clang has no
// -Wmaybe-uninitialized (and warns about the unknown name), so only GCC is told.
#if defined(__clang__)
#define BNLAB_AVX512_INTRINSICS_BEGIN \
  _Pragma("GCC diagnostic push") _Pragma("GCC diagnostic ignored \"-Wuninitialized\"")
#else
#define BNLAB_AVX512_INTRINSICS_BEGIN                                                          \
  _Pragma("GCC diagnostic push") _Pragma("GCC diagnostic ignored \"-Wmaybe-uninitialized\"") \
      _Pragma("GCC diagnostic ignored \"-Wuninitialized\"")
#endif
#define BNLAB_AVX512_INTRINSICS_END _Pragma("GCC diagnostic pop")

#if defined(__x86_64__)
#define BNLAB_TARGET_AVX512 __attribute__((target("arch=x86-64-v4")))
#define BNLAB_TARGET_AVX2 __attribute__((target("arch=x86-64-v3")))
#define BNLAB_MULTIVERSION(ret, name, params, args, body)                 \
  namespace {                                                             \
  BNLAB_TARGET_AVX512 ret name##_clone_v4 params { return body args; }      \
  BNLAB_TARGET_AVX2 ret name##_clone_v3 params { return body args; }          \
  ret name##_clone_base params { return body args; }                        \
  }                                                                       \
  ret name params {                                                       \
    switch (::bnlab::kernels::cpu_isa()) {                                \
      case ::bnlab::kernels::Isa::Avx512: return name##_clone_v4 args;      \
      case ::bnlab::kernels::Isa::Avx2: return name##_clone_v3 args;          \
      default: return name##_clone_base args;                               \
    }                                                                     \
  }
#else
#define BNLAB_MULTIVERSION(ret, name, params, args, body) \
  ret name params { return body args; }
#endif
