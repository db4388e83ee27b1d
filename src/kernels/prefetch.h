// Software prefetch of a range ahead of its use, for kernels that walk the planes of an activation
// one after another while other streams share the caches. A batch's activations do not fit in the
// caches, and beside a Winograd transform's 16 planes of V or M in L2 the hardware's prefetchers
// did not keep up: the transform's loads and stores waited for their lines (perf, in a training
// step; not in a kernel benchmark, whose planes stay in the caches). Asking for the next plane
// while the current one is worked on hides that wait.
#pragma once

#include <cstdint>

namespace bnlab::kernels {

// Always inlined: a call that is not inlined GCC deems free of side effects and deletes (it did in
// vector_rows.cpp's clones).
inline __attribute__((always_inline)) void prefetch_bytes(const void* p, int64_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (int64_t i = 0; i < bytes; i += 64) __builtin_prefetch(c + i, 0, 3);  // read, keep in all levels
}

// The same into L2 only, for a range further ahead than L1 would keep.
inline __attribute__((always_inline)) void prefetch_bytes_l2(const void* p, int64_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (int64_t i = 0; i < bytes; i += 64) __builtin_prefetch(c + i, 0, 2);
}

}  // namespace bnlab::kernels
