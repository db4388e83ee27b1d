#include "kernels/linear.h"

#include <gtest/gtest.h>

#include "gradcheck.h"

namespace bnlab::kernels {
namespace {

using testing::random_vector;

TEST(LinearKernel, ForwardIsXWTransposePlusBias) {
  const int64_t N = 3, I = 5, O = 4;
  const auto x = random_vector(N * I, 1), w = random_vector(O * I, 2), b = random_vector(O, 3);
  std::vector<double> y(N * O);
  linear_forward(y.data(), x.data(), w.data(), b.data(), N, I, O);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < O; ++o) {
      double acc = b[o];
      for (int64_t i = 0; i < I; ++i) acc += x[n * I + i] * w[o * I + i];
      EXPECT_NEAR(y[n * O + o], acc, 1e-12);
    }
}

TEST(LinearKernel, BackwardMatchesFiniteDifferences) {
  // Large enough in every dimension that gemm_parallel splits the work between threads.
  const int64_t N = 40, I = 37, O = 33;
  auto x = random_vector(N * I, 4), w = random_vector(O * I, 5), b = random_vector(O, 6);
  const auto r = random_vector(N * O, 7);
  auto loss = [&] {
    std::vector<double> y(N * O);
    linear_forward(y.data(), x.data(), w.data(), b.data(), N, I, O);
    return testing::dot(y, r);
  };
  std::vector<double> dx(x.size()), dw(w.size(), 0.0), db(O, 0.0);
  linear_backward(dx.data(), dw.data(), db.data(), r.data(), x.data(), w.data(), N, I, O);
  testing::expect_gradient("dx", x, dx, loss);
  testing::expect_gradient("dweight", w, dw, loss);
  testing::expect_gradient("dbias", b, db, loss);
}

}  // namespace
}  // namespace bnlab::kernels
