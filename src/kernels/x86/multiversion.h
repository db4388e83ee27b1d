// Run-time choice of instruction set for the hot row loops: GCC function multi-versioning
// (target_clones) compiles a function for x86-64-v4 (AVX-512 F/BW/DQ/VL with FMA), x86-64-v3
// (AVX2 with FMA) and baseline x86-64 (SSE2), and the loader binds the best one the CPU has. So one
// binary is fast on this machine and correct on a CPU without AVX-512.
#pragma once

#if defined(__x86_64__)
#define BNLAB_MULTIVERSION __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define BNLAB_MULTIVERSION
#endif

// For a template body shared by a multi-versioned float function and the plain double one: it
// must be inlined into each clone to be compiled for the clone's instruction set.
#define BNLAB_INLINE inline __attribute__((always_inline))
