// The shared gradient checker: central finite differences in double precision against an
// analytic gradient. Loss functions are written as L = sum(f(x) * r) with a fixed random r, so
// that dL/dy = r is the upstream gradient handed to a backward kernel.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace bnlab::testing {

inline std::vector<double> random_vector(size_t n, uint32_t seed, double scale = 1.0, double offset = 0.0) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<double> v(n);
  for (double& x : v) x = offset + scale * normal(gen);
  return v;
}

inline std::vector<float> to_float(const std::vector<double>& v) { return {v.begin(), v.end()}; }

inline double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// Checks d loss / d x[i] against analytic[i] for every i. `x` is perturbed in place and restored.
inline void expect_gradient(const std::string& what, std::vector<double>& x,
                            const std::vector<double>& analytic, const std::function<double()>& loss,
                            double h = 1e-5, double tolerance = 1e-6) {
  ASSERT_EQ(x.size(), analytic.size()) << what;
  double worst = 0;
  size_t worst_index = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double saved = x[i];
    x[i] = saved + h;
    const double plus = loss();
    x[i] = saved - h;
    const double minus = loss();
    x[i] = saved;
    const double numeric = (plus - minus) / (2 * h);
    const double error = std::abs(numeric - analytic[i]) / std::max(1.0, std::abs(numeric));
    if (error > worst) {
      worst = error;
      worst_index = i;
    }
  }
  EXPECT_LT(worst, tolerance) << what << ": worst relative error at index " << worst_index
                              << ", analytic " << analytic[worst_index];
}

}  // namespace bnlab::testing
