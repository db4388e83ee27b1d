// Sigmoid and tanh kernels: backward against central finite differences in double, limits and NaN.
#include "kernels/sigmoid.h"

#include <gtest/gtest.h>

#include <cmath>

#include "gradcheck.h"

namespace bnlab::kernels {
namespace {

using Forward = void (*)(double*, const double*, int64_t);
using Backward = void (*)(double*, const double*, const double*, int64_t);

void check_gradient(const char* what, Forward forward, Backward backward) {
  const int64_t n = 60;
  std::vector<double> x = testing::random_vector(n, 11, 3.0);  // well into both tails
  const auto r = testing::random_vector(n, 12);
  auto loss = [&] {
    std::vector<double> y(n);
    forward(y.data(), x.data(), n);
    return testing::dot(y, r);
  };
  std::vector<double> y(n), dx(n);
  forward(y.data(), x.data(), n);
  backward(dx.data(), r.data(), y.data(), n);
  testing::expect_gradient(what, x, dx, loss);
}

TEST(SigmoidKernel, BackwardMatchesFiniteDifferences) {
  check_gradient("sigmoid dx", sigmoid_forward<double>, sigmoid_backward<double>);
}

TEST(TanhKernel, BackwardMatchesFiniteDifferences) {
  check_gradient("tanh dx", tanh_forward<double>, tanh_backward<double>);
}

TEST(SigmoidKernel, ValuesLimitsAndNan) {
  const float x[6] = {0.0f, 2.0f, -2.0f, 200.0f, -200.0f, std::nanf("")};
  float y[6];
  sigmoid_forward(y, x, 6);
  EXPECT_EQ(y[0], 0.5f);
  EXPECT_FLOAT_EQ(y[1], 1.0f / (1.0f + std::exp(-2.0f)));
  EXPECT_FLOAT_EQ(y[1] + y[2], 1.0f);  // sigmoid(-x) = 1 - sigmoid(x)
  EXPECT_EQ(y[3], 1.0f);
  EXPECT_EQ(y[4], 0.0f);  // exp(200) overflows to inf: the limit, not NaN
  EXPECT_TRUE(std::isnan(y[5]));
}

TEST(TanhKernel, ValuesAndLimits) {
  const float x[4] = {0.0f, 0.5f, 50.0f, -50.0f};
  float y[4];
  tanh_forward(y, x, 4);
  EXPECT_EQ(y[0], 0.0f);
  EXPECT_FLOAT_EQ(y[1], std::tanh(0.5f));
  EXPECT_EQ(y[2], 1.0f);
  EXPECT_EQ(y[3], -1.0f);
}

}  // namespace
}  // namespace bnlab::kernels
