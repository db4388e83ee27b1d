#include "kernels/elementwise.h"

#include <gtest/gtest.h>

#include <omp.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "gradcheck.h"
#include "kernels/vector_rows.h"

namespace bnlab::kernels {
namespace {

TEST(ReluKernel, BackwardMatchesFiniteDifferences) {
  std::vector<double> x = testing::random_vector(50, 1);
  for (double& v : x) v += v > 0 ? 0.01 : -0.01;  // keep clear of the kink at 0
  const auto r = testing::random_vector(50, 2);
  auto loss = [&] {
    std::vector<double> y(50);
    relu_forward(y.data(), x.data(), 50);
    return testing::dot(y, r);
  };
  std::vector<double> y(50), dx(50);
  relu_forward(y.data(), x.data(), 50);
  relu_backward(dx.data(), r.data(), y.data(), 50);
  testing::expect_gradient("dx", x, dx, loss);
}

TEST(ReluKernel, GradientAtZeroIsZero) {
  const float y[2] = {0.0f, 1.0f}, dy[2] = {3.0f, 3.0f};
  float dx[2];
  relu_backward(dx, dy, y, 2);
  EXPECT_EQ(dx[0], 0.0f);
  EXPECT_EQ(dx[1], 3.0f);
}

TEST(ReluKernel, NanPropagatesAsInPyTorch) {
  const float x[3] = {std::nanf(""), -1.0f, 2.0f};
  float y[3];
  relu_forward(y, x, 3);
  EXPECT_TRUE(std::isnan(y[0]));
  EXPECT_EQ(y[1], 0.0f);
  EXPECT_EQ(y[2], 2.0f);
}

TEST(DropoutKernel, KeepsAboutOneMinusPAndScales) {
  const int64_t n = 100000;
  std::vector<float> x(n, 2.0f), y(n);
  std::vector<uint8_t> keep(n);
  dropout_forward(y.data(), keep.data(), x.data(), 0.25f, 42, n);
  int64_t kept = 0;
  for (int64_t i = 0; i < n; ++i) {
    kept += keep[i];
    ASSERT_EQ(y[i], keep[i] ? 2.0f * (1.0f / 0.75f) : 0.0f);
  }
  EXPECT_NEAR(static_cast<double>(kept) / n, 0.75, 0.01);
}

TEST(DropoutKernel, SameKeySameMaskAnyThreadCount) {
  // 16 blocks of 16,384 elements and an odd tail: with 1 to 5 threads every thread runs several
  // blocks (or 3 or 4, where the split is uneven), at different offsets for each count.
  const int64_t n = 16 * 16384 + 7;
  const float p = 0.5f;
  const uint32_t threshold = 1u << 23;  // ceil(p * 2^24)
  std::vector<float> x(n, 1.0f), y(n);
  // The mask as a pure function of (key, i): what every split must draw.
  std::vector<uint8_t> expected(n);
  for (int64_t i = 0; i < n; ++i) expected[i] = dropout_uniform(7, i) >= threshold;
  const int saved = omp_get_max_threads();
  omp_set_dynamic(0);
  for (int threads = 1; threads <= 5; ++threads) {
    omp_set_num_threads(threads);
    std::vector<uint8_t> keep(n, 2);
    dropout_forward(y.data(), keep.data(), x.data(), p, 7, n);
    EXPECT_EQ(keep, expected) << threads << " threads";
  }
  omp_set_num_threads(saved);
  std::vector<uint8_t> other(n);
  dropout_forward(y.data(), other.data(), x.data(), p, 8, n);
  EXPECT_NE(other, expected);
}

TEST(DropoutKernel, BackwardMatchesFiniteDifferences) {
  std::vector<double> x = testing::random_vector(64, 3);
  const auto r = testing::random_vector(64, 4);
  std::vector<uint8_t> keep(64);
  auto loss = [&] {
    std::vector<double> y(64);
    dropout_forward(y.data(), keep.data(), x.data(), 0.3f, 99, 64);
    return testing::dot(y, r);
  };
  loss();
  std::vector<double> dx(64);
  dropout_backward(dx.data(), r.data(), keep.data(), 0.3f, 64);
  testing::expect_gradient("dx", x, dx, loss);
}

// Every element of the range zeroed, over several of the threads' blocks and a partial one,
// and nothing past it.
TEST(FillZeroKernel, ZeroesTheRangeAndNothingPastIt) {
  const int64_t count = 3 * 16384 + 77;
  std::vector<float> x(count + 5, 1.5f);
  fill_zero(x.data(), count);
  for (int64_t i = 0; i < count; ++i) ASSERT_EQ(x[i], 0.0f) << i;
  for (int64_t i = count; i < count + 5; ++i) EXPECT_EQ(x[i], 1.5f) << i;
}

// One bad value anywhere (the first, the last, a block's edge, the tail past the last full
// block) is found on 1 to 3 threads; the largest finite values, denormals and -0 are not bad.
TEST(AllFiniteKernel, FindsEveryKindOfNonFiniteValueAnywhere) {
  const int64_t count = 3 * 16384 + 77;
  std::vector<float> x(count, 1.0f);
  x[5] = std::numeric_limits<float>::max();
  x[6] = -std::numeric_limits<float>::max();
  x[7] = std::numeric_limits<float>::denorm_min();
  x[8] = -0.0f;
  const int saved = omp_get_max_threads();
  omp_set_dynamic(0);
  for (int threads = 1; threads <= 3; ++threads) {
    omp_set_num_threads(threads);
    EXPECT_TRUE(all_finite(x.data(), count)) << threads << " threads";
    for (const int64_t at : {int64_t{0}, int64_t{16383}, int64_t{16384}, 2 * int64_t{16384} + 1, count - 1}) {
      for (const float bad : {std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                              std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::quiet_NaN()}) {
        const float saved_value = x[at];
        x[at] = bad;
        EXPECT_FALSE(all_finite(x.data(), count)) << bad << " at " << at << ", " << threads << " threads";
        x[at] = saved_value;
      }
    }
  }
  omp_set_num_threads(saved);
  x[count - 1] = std::numeric_limits<float>::infinity();
  EXPECT_TRUE(all_finite(x.data(), count - 1));  // only the range given is read
}

}  // namespace
}  // namespace bnlab::kernels
