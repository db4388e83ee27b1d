// Counter-based random numbers: every draw is a pure function of (key, index), so results do not
// depend on the thread count or on how work is split, and resuming needs only the step counter.
#pragma once

#include <cstdint>

namespace bnlab {

// splitmix64's finalizer (Steele, Lea, Flood 2014): a bijective 64-bit mixer.
constexpr uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Derives an independent stream key from a parent key and a label (purpose, epoch, step, layer).
constexpr uint64_t derive_key(uint64_t key, uint64_t label) {
  return mix64(key ^ mix64(label + 0x9e3779b97f4a7c15ULL));
}

constexpr uint64_t random_bits(uint64_t key, uint64_t index) {
  return mix64(key + (index + 1) * 0x9e3779b97f4a7c15ULL);
}

// Uniform in [0, 1) with 24 random bits: exactly representable as float.
constexpr float random_uniform(uint64_t key, uint64_t index) {
  return static_cast<float>(random_bits(key, index) >> 40) * (1.0f / 16777216.0f);
}

// Sequential generator over the same mixer, for inherently serial uses such as shuffling.
class Rng {
 public:
  explicit Rng(uint64_t key) : key_(key) {}
  uint64_t next() { return random_bits(key_, counter_++); }
  // Uniform integer in [0, bound) without modulo bias (Lemire 2019).
  uint64_t below(uint64_t bound);

 private:
  uint64_t key_;
  uint64_t counter_ = 0;
};

// Stream labels, so that each use of the seed draws its own numbers.
enum class Stream : uint64_t { Init = 1, Shuffle = 2, Dropout = 3, Recalibrate = 4 };

}  // namespace bnlab
