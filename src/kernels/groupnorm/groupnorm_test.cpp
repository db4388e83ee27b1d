// Per-sample-group normalization kernels in double against finite differences (GroupNorm,
// InstanceNorm as G = C, LayerNorm as (N, C*S, 1) with G = 1), the fixed-statistics backward, the
// running statistics, and the large-mean case in float against a double reference.
#include "kernels/groupnorm/groupnorm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "gradcheck.h"

namespace bnlab::kernels {
namespace {

using testing::expect_gradient;
using testing::random_vector;

struct GnCase {
  int64_t N, C, S, G;
  bool affine;
};

std::string name(const GnCase& c) {
  return "N=" + std::to_string(c.N) + " C=" + std::to_string(c.C) + " S=" + std::to_string(c.S) +
         " G=" + std::to_string(c.G) + (c.affine ? " affine" : "");
}

// loss = sum(GN(x; w, b) * r); fills the analytic gradients when dx is not null.
double gn_loss(const GnCase& c, const std::vector<double>& x, const std::vector<double>& w,
               const std::vector<double>& b, const std::vector<double>& r, std::vector<double>* dx,
               std::vector<double>* dw, std::vector<double>* db) {
  std::vector<double> mean(c.N * c.G), invstd(c.N * c.G), y(x.size());
  gn_stats(mean.data(), invstd.data(), static_cast<double*>(nullptr), x.data(), 1e-5, c.N, c.C, c.S, c.G);
  const double* wp = c.affine ? w.data() : nullptr;
  const double* bp = c.affine ? b.data() : nullptr;
  gn_normalize(y.data(), x.data(), mean.data(), invstd.data(), wp, bp, c.N, c.C, c.S, c.G);
  if (dx) {
    std::vector<double> partial(2 * c.N * c.C);
    dx->assign(x.size(), 0);
    dw->assign(c.C, 0);
    db->assign(c.C, 0);
    gn_backward(dx->data(), c.affine ? dw->data() : nullptr, c.affine ? db->data() : nullptr,
                partial.data(), r.data(), x.data(), mean.data(), invstd.data(), wp, c.N, c.C, c.S, c.G);
  }
  return testing::dot(y, r);
}

TEST(GroupNormKernels, GradientsMatchFiniteDifferences) {
  const GnCase cases[] = {
      {3, 6, 5, 3, true},   // GroupNorm
      {2, 4, 7, 4, true},   // InstanceNorm (groups of one channel)
      {2, 4, 6, 1, false},  // one group
      {4, 8, 1, 2, true},   // spatial size 1 (GroupNorm after a Linear)
      {2, 24, 1, 1, true},  // LayerNorm over (4, 2, 3) as (N, 24, 1)
  };
  for (const GnCase& c : cases) {
    std::vector<double> x = random_vector(c.N * c.C * c.S, 1, 2.0, 0.5);
    std::vector<double> w = random_vector(c.C, 2, 0.5, 1.0), b = random_vector(c.C, 3);
    const std::vector<double> r = random_vector(x.size(), 4);
    std::vector<double> dx, dw, db;
    gn_loss(c, x, w, b, r, &dx, &dw, &db);
    auto loss = [&] { return gn_loss(c, x, w, b, r, nullptr, nullptr, nullptr); };
    expect_gradient(name(c) + " dx", x, dx, loss);
    if (c.affine) {
      expect_gradient(name(c) + " dweight", w, dw, loss);
      expect_gradient(name(c) + " dbias", b, db, loss);
    }
  }
}

TEST(GroupNormKernels, FixedStatisticsBackward) {
  const int64_t N = 2, C = 3, S = 4;
  std::vector<double> x = random_vector(N * C * S, 5), w = random_vector(C, 6, 0.5, 1.0), b = random_vector(C, 7);
  const std::vector<double> rm = {0.5, -1.0, 0.25}, rv = {2.0, 0.5, 1.5};
  const std::vector<double> r = random_vector(x.size(), 8);
  auto loss = [&] {
    std::vector<double> mean(N * C), invstd(N * C), y(x.size());
    gn_stats_from_running(mean.data(), invstd.data(), rm.data(), rv.data(), 1e-5, N, C);
    gn_normalize(y.data(), x.data(), mean.data(), invstd.data(), w.data(), b.data(), N, C, S, C);
    return testing::dot(y, r);
  };
  std::vector<double> mean(N * C), invstd(N * C), partial(2 * N * C), dx(x.size()), dw(C, 0), db(C, 0);
  gn_stats_from_running(mean.data(), invstd.data(), rm.data(), rv.data(), 1e-5, N, C);
  gn_backward_fixed_stats(dx.data(), dw.data(), db.data(), partial.data(), r.data(), x.data(), mean.data(),
                          invstd.data(), w.data(), N, C, S);
  expect_gradient("dx", x, dx, loss);
  expect_gradient("dweight", w, dw, loss);
  expect_gradient("dbias", b, db, loss);
}

TEST(GroupNormKernels, RunningStatisticsAverageTheSamples) {
  const int64_t N = 2, C = 2, S = 3;
  const std::vector<double> x = {1, 2, 3, 0, 0, 6, 2, 4, 6, -1, -1, -1};
  std::vector<double> mean(N * C), invstd(N * C), var_sum(N * C);
  gn_stats(mean.data(), invstd.data(), var_sum.data(), x.data(), 1e-5, N, C, S, C);
  std::vector<double> rm = {0, 0}, rv = {1, 1};
  in_update_running(rm.data(), rv.data(), mean.data(), var_sum.data(), 0.1, N, C, S);
  // channel 0: means 2 and 4, unbiased variances 1 and 4; channel 1: means 2 and -1, variances 12 and 0
  EXPECT_DOUBLE_EQ(rm[0], 0.1 * 3);
  EXPECT_DOUBLE_EQ(rv[0], 0.9 + 0.1 * 2.5);
  EXPECT_DOUBLE_EQ(rm[1], 0.1 * 0.5);
  EXPECT_DOUBLE_EQ(rv[1], 0.9 + 0.1 * 6);
}

// mean 1e4, std 1e-2 in float: the output is the double computation's to float rounding.
TEST(GroupNormKernels, LargeMeanTinyVarianceIsExactToFloat) {
  const int64_t N = 2, C = 4, S = 16, G = 2;
  const std::vector<float> x = testing::to_float(random_vector(N * C * S, 9, 1e-2, 1e4));
  std::vector<double> mean(N * G), invstd(N * G);
  std::vector<float> y(x.size());
  gn_stats(mean.data(), invstd.data(), static_cast<double*>(nullptr), x.data(), 1e-5, N, C, S, G);
  gn_normalize(y.data(), x.data(), mean.data(), invstd.data(), static_cast<const float*>(nullptr),
               static_cast<const float*>(nullptr), N, C, S, G);
  const int64_t M = C / G * S;
  for (int64_t ng = 0; ng < N * G; ++ng) {
    double mu = 0, var = 0;
    for (int64_t i = 0; i < M; ++i) mu += x[ng * M + i];
    mu /= M;
    for (int64_t i = 0; i < M; ++i) var += (x[ng * M + i] - mu) * (x[ng * M + i] - mu);
    const double inv = 1 / std::sqrt(var / M + 1e-5);
    for (int64_t i = 0; i < M; ++i) {
      const double want = (x[ng * M + i] - mu) * inv;
      EXPECT_NEAR(y[ng * M + i], want, 1e-6 * (1 + std::abs(want))) << ng << " " << i;
    }
  }
}

}  // namespace
}  // namespace bnlab::kernels
