#include "kernels/transpose.h"

#include <gtest/gtest.h>

#include <vector>

#include "kernels/linear.h"
#include "gradcheck.h"

namespace bnlab::kernels {
namespace {

using testing::random_vector;

// Every element lands where it belongs: shapes with whole tiles only, with partial tiles at the
// bottom and right, with more than one run of columns a task, smaller than a tile, one row.
TEST(Transpose, EveryElementLandsAtItsTransposedPlace) {
  const int64_t shapes[][2] = {{16, 16}, {64, 9216 / 8}, {37, 53}, {48, 2100}, {5, 7}, {1, 40}, {33, 1}};
  for (const auto& [rows, cols] : shapes) {
    std::vector<float> x(static_cast<size_t>(rows * cols));
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i) + 0.5f;  // each value unique
    std::vector<float> xt(x.size(), -1.0f);
    transpose(xt.data(), x.data(), rows, cols);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c)
        ASSERT_EQ(xt[c * rows + r], x[r * cols + c]) << rows << "x" << cols << " at (" << r << ", " << c << ")";
  }
}

TEST(Transpose, DoubleTakesTheSamePlaces) {
  const int64_t rows = 19, cols = 35;
  const auto x = random_vector(rows * cols, 1);
  std::vector<double> xt(x.size());
  transpose(xt.data(), x.data(), rows, cols);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) ASSERT_EQ(xt[c * rows + r], x[r * cols + c]);
}

// The Linear layer's path with scratch (x transposed, then y^T = w x^T) gives x w^T + b.
TEST(Transpose, LinearForwardWithScratchIsXWTransposePlusBias) {
  const int64_t N = 40, I = 1100, O = 12;
  const auto xd = random_vector(N * I, 2), wd = random_vector(O * I, 3), bd = random_vector(O, 4);
  const std::vector<float> x(xd.begin(), xd.end()), w(wd.begin(), wd.end()), b(bd.begin(), bd.end());
  std::vector<float> y(static_cast<size_t>(N * O)), scratch(static_cast<size_t>(linear_scratch_size(N, I, O)));
  linear_forward(y.data(), x.data(), w.data(), b.data(), N, I, O, scratch.data());
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < O; ++o) {
      double acc = b[o];
      for (int64_t i = 0; i < I; ++i) acc += static_cast<double>(x[n * I + i]) * w[o * I + i];
      EXPECT_NEAR(y[n * O + o], acc, 1e-4) << "(" << n << ", " << o << ")";
    }
}

}  // namespace
}  // namespace bnlab::kernels
