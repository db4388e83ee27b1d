// Batch Renormalization's kernels in double against finite differences: with r and d held at
// their values (the paper's "treated as constants"), the input and parameter gradients of
// y = weight * ((x - mean_B) * invstd_B * r + d) + bias, mean_B and invstd_B the batch's.
#include "kernels/batchnorm/renorm.h"

#include <gtest/gtest.h>

#include "gradcheck.h"
#include "kernels/batchnorm/batchnorm.h"

namespace bnlab::kernels {
namespace {

using testing::expect_gradient;
using testing::random_vector;

struct RenormCase {
  int64_t N, C, S;
  double r_max, d_max;
};

class RenormGradient : public ::testing::TestWithParam<RenormCase> {};

TEST_P(RenormGradient, ConstantCorrectionsGradientMatchesFiniteDifferences) {
  const RenormCase c = GetParam();
  std::vector<double> x = random_vector(c.N * c.C * c.S, 31, 2.0, 1.0), w = random_vector(c.C, 32, 0.3, 1.0),
                      b = random_vector(c.C, 33), dy = random_vector(x.size(), 34);
  const std::vector<double> running_mean = random_vector(c.C, 35), running_var = random_vector(c.C, 36, 0.2, 1.5);
  const double eps = 1e-5;
  const int64_t count = c.N * c.S;
  // r and d from the unperturbed batch, then fixed
  std::vector<double> mean(c.C), var_sum(c.C), r(c.C), d(c.C);
  bn_stats(mean.data(), var_sum.data(), x.data(), c.N, c.C, c.S);
  renorm_correction(r.data(), d.data(), mean.data(), var_sum.data(), count, running_mean.data(), running_var.data(),
                    eps, c.r_max, c.d_max, c.C);
  auto forward = [&](std::vector<double>* y, std::vector<double>* invstd_out, std::vector<double>* weight_r) {
    std::vector<double> m(c.C), v(c.C), invstd(c.C), invstd_r(c.C), wr(c.C), bias_d(c.C);
    bn_stats(m.data(), v.data(), x.data(), c.N, c.C, c.S);
    bn_invstd_from_var_sum(invstd.data(), v.data(), count, eps, c.C);
    renorm_coefficients(invstd_r.data(), wr.data(), bias_d.data(), invstd.data(), r.data(), d.data(), w.data(),
                        b.data(), c.C);
    y->assign(x.size(), 0);
    bn_normalize(y->data(), x.data(), m.data(), invstd_r.data(), w.data(), bias_d.data(), c.N, c.C, c.S);
    if (invstd_out) *invstd_out = invstd;
    if (weight_r) *weight_r = wr;
    return m;
  };
  auto loss = [&] {
    std::vector<double> y;
    forward(&y, nullptr, nullptr);
    return testing::dot(y, dy);
  };
  std::vector<double> y, invstd, weight_r;
  const std::vector<double> m = forward(&y, &invstd, &weight_r);
  std::vector<double> sum_dy(c.C), sum_dy_xmu(c.C), dx(x.size()), dw(c.C, 0.0), db(c.C, 0.0);
  bn_backward_reduce<double>(sum_dy.data(), sum_dy_xmu.data(), dy.data(), x.data(), m.data(), nullptr, c.N, c.C, c.S);
  renorm_backward_params(dw.data(), db.data(), sum_dy.data(), sum_dy_xmu.data(), invstd.data(), r.data(), d.data(),
                         c.C);
  bn_backward_input_train<double>(dx.data(), dy.data(), x.data(), m.data(), invstd.data(), weight_r.data(), nullptr,
                                  sum_dy.data(), sum_dy_xmu.data(), count, c.N, c.C, c.S);
  expect_gradient("dx", x, dx, loss);
  expect_gradient("dweight", w, dw, loss);
  expect_gradient("dbias", b, db, loss);
}

INSTANTIATE_TEST_SUITE_P(Cases, RenormGradient,
                         ::testing::Values(RenormCase{4, 3, 5, 1.5, 0.5},    // r and d clip
                                           RenormCase{6, 2, 1, 100, 100},    // they do not
                                           RenormCase{3, 4, 7, 1.0, 0.0}));  // BN

TEST(RenormCorrection, ClipsToTheLimits) {
  // sigma_B = 2 against sigma = 1: r = 2, clipped to r_max; the mean 3 away: d = 3, clipped.
  const double mean = 3, var_sum = 4.0 * 10, running_mean = 0, running_var = 1;
  double r = 0, d = 0;
  renorm_correction(&r, &d, &mean, &var_sum, 10, &running_mean, &running_var, 0.0, 1.5, 0.5, 1);
  EXPECT_DOUBLE_EQ(r, 1.5);
  EXPECT_DOUBLE_EQ(d, 0.5);
  renorm_correction(&r, &d, &mean, &var_sum, 10, &running_mean, &running_var, 0.0, 10, 10, 1);
  EXPECT_DOUBLE_EQ(r, 2.0);
  EXPECT_DOUBLE_EQ(d, 3.0);
  const double small_var_sum = 0.25 * 10;  // sigma_B = 0.5: r = 0.5, clipped to 1 / r_max
  renorm_correction(&r, &d, &mean, &small_var_sum, 10, &running_mean, &running_var, 0.0, 1.5, 0.5, 1);
  EXPECT_DOUBLE_EQ(r, 1.0 / 1.5);
}

}  // namespace
}  // namespace bnlab::kernels
