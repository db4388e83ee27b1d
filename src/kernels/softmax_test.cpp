#include "kernels/softmax.h"

#include <gtest/gtest.h>

#include <cmath>

#include "gradcheck.h"

namespace bnlab::kernels {
namespace {

TEST(LogSoftmaxKernel, StableForHugeLogits) {
  const float x[3] = {1000.0f, 0.0f, -1000.0f};
  float y[3];
  log_softmax_forward(y, x, 1, 3);
  EXPECT_FLOAT_EQ(y[0], 0.0f);
  EXPECT_FLOAT_EQ(y[1], -1000.0f);
  EXPECT_TRUE(std::isfinite(y[2]));
}

TEST(LogSoftmaxKernel, RowsExponentiateToOne) {
  const auto x = testing::random_vector(4 * 10, 1, 3.0);
  std::vector<double> y(40);
  log_softmax_forward(y.data(), x.data(), 4, 10);
  for (int n = 0; n < 4; ++n) {
    double s = 0;
    for (int k = 0; k < 10; ++k) s += std::exp(y[n * 10 + k]);
    EXPECT_NEAR(s, 1.0, 1e-12);
  }
}

TEST(LogSoftmaxNll, BackwardMatchesFiniteDifferences) {
  const int64_t N = 5, K = 7;
  std::vector<double> x = testing::random_vector(N * K, 2, 2.0);
  const uint8_t labels[N] = {0, 6, 3, 3, 1};
  auto loss = [&] {
    std::vector<double> y(N * K);
    log_softmax_forward(y.data(), x.data(), N, K);
    return nll_loss<double>(nullptr, y.data(), labels, N, K);
  };
  std::vector<double> y(N * K), dlogp(N * K), dx(N * K);
  log_softmax_forward(y.data(), x.data(), N, K);
  nll_loss(dlogp.data(), y.data(), labels, N, K);
  log_softmax_backward(dx.data(), dlogp.data(), y.data(), N, K);
  testing::expect_gradient("dx", x, dx, loss);
}

}  // namespace
}  // namespace bnlab::kernels
