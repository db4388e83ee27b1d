#include "experiments/stats.h"

#include <algorithm>
#include <cmath>

namespace bnlab::experiments {

double mean(const std::vector<double>& v) {
  if (v.empty()) return std::nan("");
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

double stddev(const std::vector<double>& v) {
  if (v.size() < 2) return 0;
  const double m = mean(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size() - 1));
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  const double rank = q / 100.0 * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(rank));
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (rank - static_cast<double>(lo)) * (v[hi] - v[lo]);
}

Moments moments(const float* x, long long n) {
  if (n <= 0) return {std::nan(""), std::nan("")};
  double s = 0;
  for (long long i = 0; i < n; ++i) s += x[i];
  const double m = s / static_cast<double>(n);
  double ss = 0;  // two passes: no cancellation for large means
  for (long long i = 0; i < n; ++i) ss += (x[i] - m) * (x[i] - m);
  return {m, std::sqrt(ss / static_cast<double>(n))};
}

}  // namespace bnlab::experiments
