// Software prefetch of a range ahead of its use, for kernels that walk the planes of an activation
// one after another while other streams share the caches. A batch's activations do not fit in the
// caches, and beside a Winograd transform's 16 planes of V or M in L2 the hardware's prefetchers
// did not keep up: the transform's loads and stores waited for their lines (perf, in a training
// step; not in a kernel benchmark, whose planes stay in the caches). Asking for the next plane
// while the current one is worked on hides that wait.
#pragma once

#include <algorithm>
#include <cstdint>

namespace bnlab::kernels {

// The next plane asked for in pieces, one at each step of the loop over the current plane (part k
// at step k), rather than all at once: a burst of 36 or more misses is more than an L1 tracks at a
// time on some cores (12 to 24 line-fill buffers on recent x86 ones), where the loop's own loads
// and stores might queue behind it (not measured: on the Zen 5 here the pieces and one burst
// measured the same). Planes need not start on a cache line, so the last part also asks for the
// plane's last byte, whose line a count of 64-byte steps from the start can miss.
struct PlanePrefetch {
  int64_t bytes, lines, lines_per_part;
  PlanePrefetch(int64_t plane_bytes, int64_t parts)
      : bytes(plane_bytes),
        lines((plane_bytes + 63) / 64),
        lines_per_part(parts > 0 ? (lines + parts - 1) / parts : lines) {}
  struct Lines {
    int64_t begin, end;  // 64-byte steps from the plane's start
  };
  Lines lines_of(int64_t k) const { return {std::min(lines, k * lines_per_part), std::min(lines, (k + 1) * lines_per_part)}; }
  // Always inlined: a call that is not inlined GCC deems free of side effects and deletes (it did
  // in vector_rows.cpp's clones).
  __attribute__((always_inline)) void part(const void* next_plane, int64_t k) const {
    const char* c = static_cast<const char*>(next_plane);
    const Lines l = lines_of(k);
    for (int64_t i = l.begin; i < l.end; ++i) __builtin_prefetch(c + 64 * i, 0, 3);  // read, all levels
    if (l.begin < l.end && l.end == lines && bytes > 0) __builtin_prefetch(c + bytes - 1, 0, 3);
  }
  // Part k of plane p + 1 of the `count` planes laid one after another from `planes`, while plane p
  // is worked on; nothing after the last (no pointer is formed past the array).
  __attribute__((always_inline)) void part_of_next(const void* planes, int64_t p, int64_t count, int64_t k) const {
    if (p + 1 < count) part(static_cast<const char*>(planes) + (p + 1) * bytes, k);
  }
};

// A range into L2 only, for data further ahead than L1 would keep (always inlined, as part()), its
// last byte's line included. In one burst: into L2 a sample ahead, not before the next loads.
inline __attribute__((always_inline)) void prefetch_bytes_l2(const void* p, int64_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (int64_t i = 0; i < bytes; i += 64) __builtin_prefetch(c + i, 0, 2);
  if (bytes > 0) __builtin_prefetch(c + bytes - 1, 0, 2);
}

}  // namespace bnlab::kernels
