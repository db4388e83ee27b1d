// Medians of timed repetitions, the same for every side of bench/compare written in C++
// (bnlab_bench.cpp, libtorch_bench.cpp; torch_bench.py's median_seconds does the same in Python).
#pragma once

#include <algorithm>
#include <chrono>
#include <functional>
#include <vector>

namespace bench {

using Clock = std::chrono::steady_clock;

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

// Runs `body` warmup + reps times; the median seconds of the last reps.
inline double median_seconds(int warmup, int reps, const std::function<void(int)>& body) {
  std::vector<double> times;
  for (int i = 0; i < warmup + reps; ++i) {
    const auto t0 = Clock::now();
    body(i);
    const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
    if (i >= warmup) times.push_back(dt);
  }
  return median(times);
}

}  // namespace bench
