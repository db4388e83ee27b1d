// bnlab's own choice of instruction set for its multi-versioned kernels (multiversion.h) and its
// hand-written AVX-512 paths: made once, at the first kernel call, from what the CPU has, capped
// by the environment variable BNLAB_MAX_CPU_ISA (as oneDNN's DNNL_MAX_CPU_ISA) and, for tests, by
// set_max_cpu_isa. docs/guide.md documents the setting.
//   avx512    (the default) everything the CPU has: the x86-64-v4 clones where it has all of
//             x86-64-v4 (AVX-512 F/BW/DQ/VL), the AVX-512F intrinsics where it has AVX-512F
//   avx2      the x86-64-v3 clones (AVX2 with FMA) at most, no AVX-512 intrinsics
//   baseline  the x86-64 (SSE2) clones and portable loops only
// A cap above what the CPU has changes nothing. A value that is none of these is reported on
// stderr in one line naming the variable, and ignored (the default): the first kernel call may
// run inside a parallel region, where an exception cannot propagate.
#pragma once

#include <string_view>

namespace bnlab::kernels {

enum class Isa { Baseline, Avx2, Avx512 };

// The level the multi-versioned loops run: the CPU's, capped.
Isa cpu_isa();
// Whether the AVX-512F intrinsic paths (winograd_avx512.cpp, pool_avx512.cpp, gemm_nt_avx512.cpp,
// conv_weight_grad_avx512.cpp) run.
bool avx512_enabled();
// The best level the CPU has, whatever the cap.
Isa cpu_best_isa();

// The cap (Isa::Avx512: none); set_max_cpu_isa replaces the one from BNLAB_MAX_CPU_ISA, for the
// tests that run every variant. Not to be called while kernels run on other threads.
Isa max_cpu_isa();
void set_max_cpu_isa(Isa cap);

// "avx512", "avx2", "baseline"; parse_isa throws bnlab::Error naming `where` for anything else.
std::string_view isa_name(Isa isa);
Isa parse_isa(std::string_view name, std::string_view where);

}  // namespace bnlab::kernels
