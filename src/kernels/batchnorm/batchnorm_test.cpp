// Batch-norm kernels in double against finite differences, and against a direct two-pass
// computation; the one-pass pitfall (large mean, tiny variance) included.
#include "kernels/batchnorm/batchnorm.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>

#include "gradcheck.h"
#include "kernels/batchnorm/rows.h"
#include "kernels/pool/pool.h"

namespace bnlab::kernels {
namespace {

using testing::expect_gradient;
using testing::random_vector;

struct BnCase {
  int64_t N, C, S;
  bool affine;
};

// y = BN_train(x; w, b), loss = sum(y * r); returns the loss and fills analytic gradients.
double bn_train_loss(const BnCase& c, const std::vector<double>& x, const std::vector<double>& w,
                     const std::vector<double>& b, const std::vector<double>& r,
                     std::vector<double>* dx, std::vector<double>* dw, std::vector<double>* db) {
  std::vector<double> mean(c.C), var_sum(c.C), invstd(c.C), y(x.size());
  bn_stats(mean.data(), var_sum.data(), x.data(), c.N, c.C, c.S);
  bn_invstd_from_var_sum(invstd.data(), var_sum.data(), c.N * c.S, 1e-5, c.C);
  const double* wp = c.affine ? w.data() : nullptr;
  const double* bp = c.affine ? b.data() : nullptr;
  bn_normalize(y.data(), x.data(), mean.data(), invstd.data(), wp, bp, c.N, c.C, c.S);
  if (dx) {
    std::vector<double> sum_dy(c.C), sum_dy_xmu(c.C);
    bn_backward_reduce<double>(sum_dy.data(), sum_dy_xmu.data(), r.data(), x.data(), mean.data(), nullptr, c.N, c.C, c.S);
    dx->assign(x.size(), 0);
    bn_backward_input_train<double>(dx->data(), r.data(), x.data(), mean.data(), invstd.data(), wp,
                                    nullptr, sum_dy.data(), sum_dy_xmu.data(), c.N * c.S, c.N, c.C, c.S);
    dw->assign(c.C, 0);
    db->assign(c.C, 0);
    bn_backward_params(dw->data(), db->data(), sum_dy.data(), sum_dy_xmu.data(), invstd.data(), c.C);
  }
  return testing::dot(y, r);
}

class BnGradient : public ::testing::TestWithParam<BnCase> {};

TEST_P(BnGradient, TrainingModeMatchesFiniteDifferences) {
  const BnCase c = GetParam();
  std::vector<double> x = random_vector(c.N * c.C * c.S, 1, 2.0, 0.5);
  std::vector<double> w = random_vector(c.C, 2, 0.3, 1.0), b = random_vector(c.C, 3);
  const std::vector<double> r = random_vector(x.size(), 4);
  std::vector<double> dx, dw, db;
  bn_train_loss(c, x, w, b, r, &dx, &dw, &db);
  auto loss = [&] { return bn_train_loss(c, x, w, b, r, nullptr, nullptr, nullptr); };
  expect_gradient("dx", x, dx, loss);
  if (c.affine) {
    expect_gradient("dweight", w, dw, loss);
    expect_gradient("dbias", b, db, loss);
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, BnGradient,
                         ::testing::Values(BnCase{4, 3, 5, true},    // BatchNorm2d-like (S = H*W)
                                           BnCase{6, 4, 1, true},    // BatchNorm1d (N, C)
                                           BnCase{3, 2, 7, true},    // BatchNorm1d (N, C, L)
                                           BnCase{4, 3, 5, false},   // affine off
                                           BnCase{2, 2, 1, false}),  // the smallest legal batch
                         [](const auto& info) {
                           const BnCase& c = info.param;
                           char name[64];
                           std::snprintf(name, sizeof name, "N%ldC%ldS%ld%s", static_cast<long>(c.N),
                                         static_cast<long>(c.C), static_cast<long>(c.S),
                                         c.affine ? "affine" : "plain");
                           return std::string(name);
                         });

TEST(BnFusedRelu, BackwardMatchesFiniteDifferencesOfReluOfBn) {
  const int64_t N = 4, C = 3, S = 5;
  std::vector<double> x = random_vector(N * C * S, 11, 1.5, 0.2);
  std::vector<double> w = random_vector(C, 12, 0.3, 1.0), b = random_vector(C, 13, 0.5);
  const std::vector<double> r = random_vector(x.size(), 14);
  std::vector<double> mean(C), var_sum(C), invstd(C), y(x.size());
  auto forward = [&] {
    bn_stats(mean.data(), var_sum.data(), x.data(), N, C, S);
    bn_invstd_from_var_sum(invstd.data(), var_sum.data(), N * S, 1e-5, C);
    bn_normalize_relu<double>(y.data(), x.data(), mean.data(), invstd.data(), w.data(), b.data(), N, C, S);
    return testing::dot(y, r);
  };
  forward();
  std::vector<double> sum_dy(C), sum_dy_xmu(C), dx(x.size()), dw(C, 0.0), db(C, 0.0);
  bn_backward_reduce<double>(sum_dy.data(), sum_dy_xmu.data(), r.data(), x.data(), mean.data(), y.data(), N, C, S);
  bn_backward_input_train<double>(dx.data(), r.data(), x.data(), mean.data(), invstd.data(), w.data(), y.data(),
                                  sum_dy.data(), sum_dy_xmu.data(), N * S, N, C, S);
  bn_backward_params(dw.data(), db.data(), sum_dy.data(), sum_dy_xmu.data(), invstd.data(), C);
  expect_gradient("dx", x, dx, forward);
  expect_gradient("dweight", w, dw, forward);
  expect_gradient("dbias", b, db, forward);
}

TEST(BnEval, InputGradientIsScaledUpstream) {
  const int64_t N = 3, C = 2, S = 4;
  std::vector<double> x = random_vector(N * C * S, 5), w = random_vector(C, 6, 0.5, 1.0);
  const std::vector<double> rm = {0.3, -0.2}, rv = {1.5, 0.7}, r = random_vector(x.size(), 7);
  std::vector<double> invstd(C);
  bn_invstd_from_var(invstd.data(), rv.data(), 1e-5, C);
  auto loss = [&] {
    std::vector<double> y(x.size());
    bn_normalize<double>(y.data(), x.data(), rm.data(), invstd.data(), w.data(), nullptr, N, C, S);
    return testing::dot(y, r);
  };
  std::vector<double> dx(x.size());
  bn_backward_input_eval<double>(dx.data(), r.data(), invstd.data(), w.data(), nullptr, N, C, S);
  expect_gradient("dx eval", x, dx, loss);
}

TEST(BnStats, LargeMeanTinyVarianceKeepsPrecision) {
  // x = 1e4 + 1e-2 * z: a one-pass E[x^2] - E[x]^2 in float loses every digit of the variance.
  const int64_t N = 64, C = 2, S = 9;
  const std::vector<double> z = random_vector(N * C * S, 8);
  std::vector<float> x(z.size());
  for (size_t i = 0; i < z.size(); ++i) x[i] = static_cast<float>(1e4 + 1e-2 * z[i]);
  std::vector<float> mean(C), var_sum(C);
  bn_stats(mean.data(), var_sum.data(), x.data(), N, C, S);
  for (int64_t c = 0; c < C; ++c) {
    double m = 0, v = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t s = 0; s < S; ++s) m += x[(n * C + c) * S + s];
    m /= N * S;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t s = 0; s < S; ++s) v += (x[(n * C + c) * S + s] - m) * (x[(n * C + c) * S + s] - m);
    EXPECT_NEAR(mean[c], m, 1e-3);
    EXPECT_NEAR(var_sum[c] / v, 1.0, 1e-2) << "channel " << c;
  }
}

// One process takes the statistics in one pass (the sum of x in double, the squares about the
// first row's mean in float lanes); PyTorch, and a synchronized BN, in two (the sum, then the
// squared deviations from the float mean). The mean must be the same float, var_sum the same or
// its neighbour (PyTorch rounds each square to float first), and in the large-mean case, where
// every square is exact, the same bits. Also where a channel's first value is its farthest
// outlier, where its whole first row is (the shift far from the mean: the exact second pass), at
// the seed network's sizes, and where the rows alias in L2 (rows 64 KiB apart: the forward
// streams instead of pipelining).
TEST(BnStats, OnePassGivesTheTwoPassStatistics) {
  struct Data {
    const char* name;
    int64_t N, C, S;
    double offset, scale;
    bool exact;
  };
  for (const Data& d : {Data{"standard", 16, 8, 49, 0.0, 1.0, false}, Data{"shifted", 16, 8, 49, 2.0, 0.5, false},
                        Data{"large mean", 64, 4, 81, 1e4, 1e-2, true}, Data{"outlier first", 8, 4, 25, 3.0, 1e-3, false},
                        Data{"conv2 size", 64, 2, 576, -0.3, 2.0, false}, Data{"(N, C)", 64, 128, 1, 0.5, 1.0, false},
                        Data{"aliased rows", 8, 16, 1024, 0.2, 1.5, false}, Data{"outlier first row", 16, 4, 49, 1.0, 0.1, false},
                        Data{"large mean, aliased", 8, 16, 1024, 1e4, 1e-2, true}}) {
    auto x = testing::to_float(random_vector(d.N * d.C * d.S, 21, d.scale, d.offset));
    if (std::string(d.name) == "outlier first") {
      for (int64_t c = 0; c < d.C; ++c) x[c * d.S] = static_cast<float>(d.offset + 1e3 * d.scale * (c + 1));
    }
    if (std::string(d.name) == "outlier first row") {  // the fast path's shift far off: its fallback
      for (int64_t c = 0; c < d.C; ++c)
        for (int64_t s = 0; s < d.S; ++s) x[c * d.S + s] += static_cast<float>(1e2 * d.scale * (c + 1));
    }
    const int64_t count = d.N * d.S;
    std::vector<float> mean(d.C), var_sum(d.C), y(x.size()), fmean(d.C), fvar_sum(d.C), invstd(d.C);
    bn_stats(mean.data(), var_sum.data(), x.data(), d.N, d.C, d.S);
    bn_forward_train<float>(y.data(), fmean.data(), fvar_sum.data(), invstd.data(), x.data(), nullptr, nullptr, 1e-5,
                            false, d.N, d.C, d.S);
    std::vector<double> sums(d.C), squares(d.C);
    bn_channel_sums(sums.data(), x.data(), d.N, d.C, d.S);
    std::vector<float> two_pass_mean(d.C);
    for (int64_t c = 0; c < d.C; ++c) two_pass_mean[c] = static_cast<float>(sums[c] / static_cast<double>(count));
    bn_channel_squared_deviations(squares.data(), x.data(), two_pass_mean.data(), d.N, d.C, d.S);
    for (int64_t c = 0; c < d.C; ++c) {
      const float two_pass_var_sum = static_cast<float>(squares[c]);
      EXPECT_EQ(mean[c], two_pass_mean[c]) << d.name << ", channel " << c;
      EXPECT_EQ(fmean[c], mean[c]) << d.name << ", channel " << c;
      EXPECT_EQ(fvar_sum[c], var_sum[c]) << d.name << ", channel " << c;
      if (d.exact) {
        EXPECT_EQ(var_sum[c], two_pass_var_sum) << d.name << ", channel " << c;
      } else {
        EXPECT_LE(std::fabs(var_sum[c] - two_pass_var_sum),
                  std::nextafter(two_pass_var_sum, INFINITY) - two_pass_var_sum)
            << d.name << ", channel " << c;
      }
    }
  }
}

TEST(BnRunning, MomentumBlendsUnbiasedVariance) {
  const float mean[1] = {2.0f}, var_sum[1] = {9.0f};
  float rm[1] = {1.0f}, rv[1] = {1.0f};
  bn_update_running(rm, rv, mean, var_sum, 10, 0.1, 1);
  EXPECT_FLOAT_EQ(rm[0], 0.9f * 1.0f + 0.1f * 2.0f);
  EXPECT_FLOAT_EQ(rv[0], 0.9f * 1.0f + 0.1f * (9.0f / 9.0f));  // unbiased: / (count - 1)
}

// The fused one-process kernels run the split kernels' operations channel by channel: the same
// bits, in float, with and without the fused ReLU and the affine parameters.
TEST(BnKernel, FusedKernelsGiveTheSplitKernelsBits) {
  for (const int64_t S : {37, 1}) {  // 1: the (N, C) path of BatchNorm1d
    const int64_t N = 5, C = 3;
    const auto x = testing::to_float(random_vector(N * C * S, 11, 2.0, 0.5));
    const auto dy = testing::to_float(random_vector(N * C * S, 12));
    const auto w = testing::to_float(random_vector(C, 13, 0.5, 1.0));
    const auto b = testing::to_float(random_vector(C, 14));
    for (const bool relu : {false, true}) {
      for (const bool affine : {false, true}) {
        const float* wp = affine ? w.data() : nullptr;
        const float* bp = affine ? b.data() : nullptr;
        std::vector<float> mean(C), var_sum(C), invstd(C), y(x.size());
        bn_stats(mean.data(), var_sum.data(), x.data(), N, C, S);
        bn_invstd_from_var_sum(invstd.data(), var_sum.data(), N * S, 1e-5, C);
        if (relu) bn_normalize_relu(y.data(), x.data(), mean.data(), invstd.data(), wp, bp, N, C, S);
        else bn_normalize(y.data(), x.data(), mean.data(), invstd.data(), wp, bp, N, C, S);
        std::vector<double> sum(C), dot(C);
        const float* mask = relu ? y.data() : nullptr;
        bn_backward_reduce(sum.data(), dot.data(), dy.data(), x.data(), mean.data(), mask, N, C, S);
        std::vector<float> dx(x.size());
        bn_backward_input_train(dx.data(), dy.data(), x.data(), mean.data(), invstd.data(), wp, mask, sum.data(),
                                dot.data(), N * S, N, C, S);

        std::vector<float> fmean(C), fvar_sum(C), finvstd(C), fy(x.size()), fdx(x.size());
        bn_forward_train(fy.data(), fmean.data(), fvar_sum.data(), finvstd.data(), x.data(), wp, bp, 1e-5, relu, N, C, S);
        std::vector<double> fsum(C), fdot(C);
        bn_backward_train(fdx.data(), fsum.data(), fdot.data(), dy.data(), x.data(), fmean.data(), finvstd.data(), wp,
                          bp, relu, N, C, S);
        EXPECT_EQ(fmean, mean);
        EXPECT_EQ(fvar_sum, var_sum);
        EXPECT_EQ(finvstd, invstd);
        EXPECT_EQ(fy, y) << "relu " << relu << " affine " << affine;
        EXPECT_EQ(fsum, sum);
        EXPECT_EQ(fdot, dot);
        EXPECT_EQ(fdx, dx) << "relu " << relu << " affine " << affine << " S " << S;
      }
    }
  }
}

// BN+ReLU+2x2 max-pool fused against bn_forward_train / bn_backward_train with the pool's own
// kernels before and after them, bit for bit: an odd width (the last column outside every
// window), a width past the AVX-512 pool's 32 (the portable planes), and rows that alias in L2
// (the kernels' streaming path, whose normalization and input gradient the threads share in
// rounds: with 129 channels on 1, 2 and 3 threads, two rounds or three, and on 2 threads a last
// round where one thread, whose share is 64 channels, has no block), with ties among a window's
// values (ReLU's zeros) and affine parameters on and off.
TEST(BnKernel, FusedPoolGivesTheBitsOfTheLayersOneByOne) {
  struct Shape4 {
    int64_t N, C, H, W;
  };
  const int saved = omp_get_max_threads();
  omp_set_dynamic(0);
  for (int threads = 1; threads <= 3; ++threads) {
    omp_set_num_threads(threads);
    for (const Shape4 sh : {Shape4{5, 3, 6, 7}, Shape4{3, 2, 5, 34}, Shape4{4, 16, 32, 32}, Shape4{9, 129, 64, 64}}) {
      const int64_t N = sh.N, C = sh.C, S = sh.H * sh.W, pooled = N * C * (sh.H / 2) * (sh.W / 2);
      const PoolGeometry g{C, sh.H, sh.W, 2, 2, 0};
      const auto x = testing::to_float(random_vector(N * C * S, 31, 2.0, 0.1));
      const auto dpool = testing::to_float(random_vector(pooled, 32));
      const auto w = testing::to_float(random_vector(C, 33, 0.5, 1.0));
      const auto b = testing::to_float(random_vector(C, 34));
      for (const bool affine : {false, true}) {
        const float* wp = affine ? w.data() : nullptr;
        const float* bp = affine ? b.data() : nullptr;
        std::vector<float> mean(C), var_sum(C), invstd(C), y(x.size()), pool_y(pooled), dy(x.size()), dx(x.size());
        std::vector<int32_t> argmax(pooled);
        std::vector<double> sum(C), dot(C);
        bn_forward_train(y.data(), mean.data(), var_sum.data(), invstd.data(), x.data(), wp, bp, 1e-5, true, N, C, S);
        maxpool2d_forward(pool_y.data(), argmax.data(), y.data(), g, N);
        maxpool2d_backward(dy.data(), dpool.data(), argmax.data(), g, N);
        bn_backward_train(dx.data(), sum.data(), dot.data(), dy.data(), x.data(), mean.data(), invstd.data(), wp, bp,
                          true, N, C, S);

        std::vector<float> fmean(C), fvar_sum(C), finvstd(C), fpool_y(pooled, -1.0f), fdx(x.size(), -1.0f);
        std::vector<int32_t> fargmax(pooled, -1);
        std::vector<double> fsum(C), fdot(C);
        bn_forward_train_relu_pool(fpool_y.data(), fargmax.data(), fmean.data(), fvar_sum.data(), finvstd.data(),
                                   x.data(), wp, bp, 1e-5, N, C, sh.H, sh.W);
        bn_backward_train_relu_pool(fdx.data(), fsum.data(), fdot.data(), dpool.data(), fargmax.data(), x.data(),
                                    fmean.data(), finvstd.data(), wp, bp, N, C, sh.H, sh.W);
        const std::string where = std::to_string(N) + "x" + std::to_string(C) + "x" + std::to_string(sh.H) + "x" +
                                  std::to_string(sh.W) + (affine ? " affine" : "") + ", " + std::to_string(threads) +
                                  " threads";
        EXPECT_EQ(fmean, mean) << where;
        EXPECT_EQ(finvstd, invstd) << where;
        EXPECT_EQ(0, std::memcmp(fpool_y.data(), pool_y.data(), pooled * sizeof(float))) << where;
        EXPECT_EQ(fargmax, argmax) << where;
        EXPECT_EQ(fsum, sum) << where;
        EXPECT_EQ(fdot, dot) << where;
        EXPECT_EQ(0, std::memcmp(fdx.data(), dx.data(), dx.size() * sizeof(float))) << where;
      }
    }
  }
  omp_set_num_threads(saved);
}

// The fused ReLU's backward recomputes its mask from x (x * alpha + beta > 0) instead of reading
// the forward's output: it must pass exactly where the forward's output is positive, on every
// instruction set (kernels_test runs again under BNLAB_MAX_CPU_ISA). Inputs one ulp apart across
// the map's zero, where a multiply and an add rounding separately would disagree with the fused
// multiply-add of the forward, and a row long enough for the vector loops and their tails.
TEST(BnKernel, ReluMaskFromXIsTheForwardOutputsSign) {
  const float alpha = 0.3f, beta = 0.1f, mean = -0.2f, k = 0.7f, grad_mean = 0.05f, scale = 1.3f;
  std::vector<float> x;
  float v = -beta / alpha;
  for (int i = 0; i < 100; ++i) v = std::nextafter(v, -1.0f);
  for (int i = 0; i < 200; ++i, v = std::nextafter(v, 1.0f)) x.push_back(v);
  for (int i = 0; i < 77; ++i) x.push_back(static_cast<float>(i % 9) * 0.25f - 1.0f);  // far from the zero too
  const int64_t n = static_cast<int64_t>(x.size());
  const auto dy = testing::to_float(random_vector(n, 21));
  std::vector<float> y(x.size());
  row_affine_relu(y.data(), x.data(), n, alpha, beta);
  int64_t positive = 0;
  for (int i = 0; i < 200; ++i) positive += y[i] > 0.0f;
  ASSERT_GT(positive, 0) << "the inputs must straddle the map's zero";
  ASSERT_LT(positive, 200) << "the inputs must straddle the map's zero";

  double sum_masked = 0, dot_masked = 0, sum_relu = 0, dot_relu = 0;
  row_sum_dot_masked(dy.data(), y.data(), x.data(), n, mean, &sum_masked, &dot_masked);
  row_sum_dot_relu(dy.data(), x.data(), n, mean, alpha, beta, &sum_relu, &dot_relu);
  EXPECT_EQ(sum_relu, sum_masked);
  EXPECT_EQ(dot_relu, dot_masked);

  std::vector<float> dx_masked(x.size()), dx_relu(x.size());
  row_bn_input_grad_masked(dx_masked.data(), dy.data(), y.data(), x.data(), n, mean, k, grad_mean, scale);
  row_bn_input_grad_relu(dx_relu.data(), dy.data(), x.data(), n, mean, k, grad_mean, scale, alpha, beta);
  EXPECT_EQ(dx_relu, dx_masked);

  // BatchNorm1d's rows: one channel per element, each with the same map here.
  const std::vector<float> alphas(x.size(), alpha), betas(x.size(), beta);
  std::vector<float> y_channels(x.size()), g(x.size());
  row_affine_channels(y_channels.data(), x.data(), n, alphas.data(), betas.data(), true);
  row_relu_grad_channels(g.data(), dy.data(), x.data(), n, alphas.data(), betas.data());
  for (int64_t i = 0; i < n; ++i) EXPECT_EQ(g[i], y_channels[i] > 0.0f ? dy[i] : 0.0f) << "element " << i;
}

}  // namespace
}  // namespace bnlab::kernels
