#include "bnlab/rng.h"

namespace bnlab {

uint64_t Rng::below(uint64_t bound) {
  // Lemire's multiply-and-reject: unbiased, one 128-bit multiply per draw.
  unsigned __int128 m = static_cast<unsigned __int128>(next()) * bound;
  uint64_t low = static_cast<uint64_t>(m);
  if (low < bound) {
    const uint64_t threshold = -bound % bound;
    while (low < threshold) {
      m = static_cast<unsigned __int128>(next()) * bound;
      low = static_cast<uint64_t>(m);
    }
  }
  return static_cast<uint64_t>(m >> 64);
}

}  // namespace bnlab
