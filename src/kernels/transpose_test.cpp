#include "kernels/transpose.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <string>
#include <vector>

#include "gradcheck.h"
#include "kernels/linear.h"

namespace bnlab::kernels {
namespace {

using testing::random_vector;

// Every element lands where it belongs, and nothing is written past xt: shapes
// with whole tiles only, with partial tiles at the bottom and right, smaller
// than a tile, one row, one column.
TEST(Transpose, EveryElementLandsAtItsTransposedPlace) {
  const int64_t shapes[][2] = {{16, 16}, {64, 9216 / 8}, {37, 53}, {48, 2100},
                               {5, 7},   {1, 40},        {33, 1}};
  for (const auto &[rows, cols] : shapes) {
    std::vector<float> x(static_cast<size_t>(rows * cols));
    for (size_t i = 0; i < x.size(); ++i)
      x[i] = static_cast<float>(i) + 0.5f;       // each value unique
    std::vector<float> xt(x.size() + 16, -1.0f); // 16 guards past the end
    transpose(xt.data(), x.data(), rows, cols);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c)
        ASSERT_EQ(xt[c * rows + r], x[r * cols + c])
            << rows << "x" << cols << " at (" << r << ", " << c << ")";
    for (size_t i = x.size(); i < xt.size(); ++i)
      ASSERT_EQ(xt[i], -1.0f) << rows << "x" << cols << " guard " << i;
  }
}

TEST(Transpose, DoubleTakesTheSamePlaces) {
  const int64_t rows = 19, cols = 35;
  const auto x = random_vector(rows * cols, 1);
  std::vector<double> xt(x.size());
  transpose(xt.data(), x.data(), rows, cols);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      ASSERT_EQ(xt[c * rows + r], x[r * cols + c]);
}

// The Linear layer's path with scratch (x transposed, then y^T = w x^T) gives x
// w^T + b, for batches cut into one block a thread (with a short last block) or
// too small to cut, on 1 to 3 threads and from inside a parallel region (one
// block, the product cut along w's rows).
TEST(Transpose, LinearForwardWithScratchIsXWTransposePlusBias) {
  const int64_t I = 1100, O = 12;
  const auto wd = random_vector(O * I, 3), bd = random_vector(O, 4);
  const std::vector<float> w(wd.begin(), wd.end()), b(bd.begin(), bd.end());
  auto check = [&](int64_t N, const std::string &where) {
    const auto xd = random_vector(N * I, 2);
    const std::vector<float> x(xd.begin(), xd.end());
    std::vector<float> y(static_cast<size_t>(N * O)),
        scratch(static_cast<size_t>(linear_scratch_size(N, I, O)));
    linear_forward(y.data(), x.data(), w.data(), b.data(), N, I, O,
                   scratch.data());
    for (int64_t n = 0; n < N; ++n)
      for (int64_t o = 0; o < O; ++o) {
        double acc = b[o], magnitude = std::abs(b[o]);
        for (int64_t i = 0; i < I; ++i) {
          const double term = static_cast<double>(x[n * I + i]) * w[o * I + i];
          acc += term, magnitude += std::abs(term);
        }
        ASSERT_NEAR(y[n * O + o], acc, 1e-6 * magnitude)
            << where << " N " << N << " at (" << n << ", " << o << ")";
      }
  };
  const int saved = omp_get_max_threads();
  omp_set_dynamic(0);
  for (int threads = 1; threads <= 3; ++threads) {
    omp_set_num_threads(threads);
    for (const int64_t N : {1, 15, 33, 40, 65})
      check(N, std::to_string(threads) + " threads");
  }
  omp_set_num_threads(saved);
#pragma omp parallel num_threads(1)
  check(40, "inside a parallel region");
}

} // namespace
} // namespace bnlab::kernels
