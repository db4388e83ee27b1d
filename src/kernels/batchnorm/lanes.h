// The fixed-order reductions of the row loops (rows.cpp, row_moments.cpp): kLanes partial sums,
// element i to lane i % kLanes, the lanes added pairwise at the end. The order is fixed by the
// code, not by the vector width (the same bits on every instruction set), and consecutive vectors
// add into different registers instead of waiting on one (a single accumulator made the BN
// statistics latency-bound: 4 cycles per add). Inline into the multi-versioned callers.
#pragma once

#include <cstdint>

#include "kernels/x86/multiversion.h"

namespace bnlab::kernels::lanes {

constexpr int kLanes = 32;

template <typename Acc>
BNLAB_INLINE Acc combine(Acc* part) {
#pragma GCC unroll 8
  for (int width = kLanes / 2; width > 0; width /= 2)
#pragma GCC unroll 16
    for (int j = 0; j < width; ++j) part[j] += part[j + width];
  return part[0];
}

// sum over i < n of term(i), in Acc, through the lanes
template <typename Acc, typename Term>
BNLAB_INLINE Acc lane_sum(int64_t n, Term term) {
  Acc part[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) part[j] += term(i + j);
  for (int j = 0; i + j < n; ++j) part[j] += term(i + j);
  return combine(part);
}

// Two sums at once: sum of a(i) and of b(i), in Acc lanes.
template <typename Acc, typename A, typename B>
BNLAB_INLINE void lane_sum2(int64_t n, A a, B b, Acc* sa, Acc* sb) {
  Acc pa[kLanes] = {}, pb[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) {
      pa[j] += a(i + j);
      pb[j] += b(i + j);
    }
  }
  for (int j = 0; i + j < n; ++j) {
    pa[j] += a(i + j);
    pb[j] += b(i + j);
  }
  *sa = combine(pa);
  *sb = combine(pb);
}

}  // namespace bnlab::kernels::lanes
