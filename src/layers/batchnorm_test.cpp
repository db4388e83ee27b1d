// BatchNorm1d / BatchNorm2d layer semantics: running statistics, momentum none, eval mode,
// track_running_stats off, num_batches_tracked, and PyTorch's one-value-per-channel error.
#include <gtest/gtest.h>

#include <cmath>

#include "bnlab/error.h"
#include "bnlab/layers.h"
#include "gradcheck.h"

namespace bnlab {
namespace {

// A BatchNorm layer with its own storage, bound the way a Network binds it.
struct BnHarness {
  std::unique_ptr<Layer> layer;
  std::vector<float> weight, bias, dweight, dbias, running_mean, running_var;
  int64_t tracked = 0;

  BnHarness(BatchNormKind kind, const BatchNormOptions& o, const Shape& in) {
    layer = make_batchnorm(kind, o);
    layer->setup(in);
    const int64_t C = in[0];
    weight.assign(C, 1.0f);
    bias.assign(C, 0.0f);
    dweight.assign(C, 0.0f);
    dbias.assign(C, 0.0f);
    running_mean.assign(C, 0.0f);
    running_var.assign(C, 1.0f);
    std::vector<TensorSlot> slots;
    if (o.affine) {
      slots.push_back({weight.data(), dweight.data(), nullptr});
      slots.push_back({bias.data(), dbias.data(), nullptr});
    }
    if (o.track_running_stats) {
      slots.push_back({running_mean.data(), nullptr, nullptr});
      slots.push_back({running_var.data(), nullptr, nullptr});
      slots.push_back({nullptr, nullptr, &tracked});
    }
    layer->bind(slots);
    layer->reserve(16, 1);
  }
};

std::vector<float> channel_values(const std::vector<float>& x, int64_t N, int64_t C, int64_t S, int64_t c) {
  std::vector<float> v;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t s = 0; s < S; ++s) v.push_back(x[(n * C + c) * S + s]);
  return v;
}

TEST(BatchNormLayer, RunningStatisticsFollowMomentumWithUnbiasedVariance) {
  const int64_t N = 4, C = 3, H = 2, W = 3, S = H * W;
  BnHarness h(BatchNormKind::TwoD, {}, {C, H, W});
  std::vector<double> expected_mean(C, 0.0), expected_var(C, 1.0);
  for (int step = 0; step < 3; ++step) {
    const auto x = testing::to_float(testing::random_vector(N * C * S, 10 + step, 2.0, 1.0));
    std::vector<float> y(x.size());
    h.layer->forward(y.data(), x.data(), N, {.mode = Mode::Train});
    for (int64_t c = 0; c < C; ++c) {
      const auto v = channel_values(x, N, C, S, c);
      double m = 0, ss = 0;
      for (float f : v) m += f;
      m /= v.size();
      for (float f : v) ss += (f - m) * (f - m);
      expected_mean[c] = 0.9 * expected_mean[c] + 0.1 * m;
      expected_var[c] = 0.9 * expected_var[c] + 0.1 * ss / (v.size() - 1);
      // The output of each channel has mean 0 and biased variance ~1 (eps aside).
      const auto out = channel_values(y, N, C, S, c);
      double om = 0, ov = 0;
      for (float f : out) om += f;
      om /= out.size();
      for (float f : out) ov += (f - om) * (f - om);
      EXPECT_NEAR(om, 0.0, 1e-5);
      EXPECT_NEAR(ov / out.size(), ss / v.size() / (ss / v.size() + 1e-5), 1e-4);
    }
    for (int64_t c = 0; c < C; ++c) {
      EXPECT_NEAR(h.running_mean[c], expected_mean[c], 1e-5);
      EXPECT_NEAR(h.running_var[c], expected_var[c], 1e-5);
    }
  }
  EXPECT_EQ(h.tracked, 3);
}

TEST(BatchNormLayer, MomentumNoneIsCumulativeAverage) {
  const int64_t N = 5, C = 2;
  BnHarness h(BatchNormKind::OneD, {.momentum = std::nullopt}, {C});
  std::vector<double> batch_means(C, 0.0);
  const int steps = 4;
  for (int step = 0; step < steps; ++step) {
    const auto x = testing::to_float(testing::random_vector(N * C, 20 + step, 1.0, step));
    std::vector<float> y(x.size());
    h.layer->forward(y.data(), x.data(), N, {.mode = Mode::Train});
    for (int64_t c = 0; c < C; ++c) {
      double m = 0;
      for (int64_t n = 0; n < N; ++n) m += x[n * C + c];
      batch_means[c] += m / N;
    }
  }
  for (int64_t c = 0; c < C; ++c) EXPECT_NEAR(h.running_mean[c], batch_means[c] / steps, 1e-5);
  EXPECT_EQ(h.tracked, steps);
}

TEST(BatchNormLayer, EvalModeUsesRunningStatistics) {
  const int64_t N = 3, C = 2, L = 4;
  BnHarness h(BatchNormKind::OneD, {}, {C, L});
  h.running_mean = {1.0f, -2.0f};
  h.running_var = {4.0f, 0.25f};
  h.weight = {2.0f, 1.0f};
  h.bias = {0.5f, 0.0f};
  const auto x = testing::to_float(testing::random_vector(N * C * L, 30));
  std::vector<float> y(x.size());
  h.layer->forward(y.data(), x.data(), N, {.mode = Mode::Eval});
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t l = 0; l < L; ++l) {
        const int64_t i = (n * C + c) * L + l;
        const double expected = (x[i] - h.running_mean[c]) / std::sqrt(h.running_var[c] + 1e-5) * h.weight[c] + h.bias[c];
        EXPECT_NEAR(y[i], expected, 1e-5);
      }
  EXPECT_EQ(h.tracked, 0);  // eval leaves the statistics alone
  EXPECT_EQ(h.running_mean[0], 1.0f);
}

TEST(BatchNormLayer, WithoutTrackedStatisticsEvalUsesTheBatch) {
  const int64_t N = 6, C = 2;
  BnHarness h(BatchNormKind::OneD, {.track_running_stats = false}, {C});
  const auto x = testing::to_float(testing::random_vector(N * C, 40, 3.0, 5.0));
  std::vector<float> train_y(x.size()), eval_y(x.size());
  h.layer->forward(train_y.data(), x.data(), N, {.mode = Mode::Train});
  h.layer->forward(eval_y.data(), x.data(), N, {.mode = Mode::Eval});
  EXPECT_EQ(train_y, eval_y);
}

TEST(BatchNormLayer, TrainingWithOneValuePerChannelIsAnError) {
  BnHarness h(BatchNormKind::OneD, {}, {4});
  std::vector<float> x(4, 1.0f), y(4);
  try {
    h.layer->forward(y.data(), x.data(), 1, {.mode = Mode::Train});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "BatchNorm1d: input: expected more than 1 value per channel when training, got input size 1x4");
  }
  EXPECT_NO_THROW(h.layer->forward(y.data(), x.data(), 1, {.mode = Mode::Eval}));
  // (N, C, L) with L > 1 has enough values even for a batch of one.
  BnHarness seq(BatchNormKind::OneD, {}, {2, 3});
  std::vector<float> xs(6), ys(6);
  for (int i = 0; i < 6; ++i) xs[i] = static_cast<float>(i);
  EXPECT_NO_THROW(seq.layer->forward(ys.data(), xs.data(), 1, {.mode = Mode::Train}));
}

TEST(BatchNormLayer, RejectsWrongInputRank) {
  EXPECT_THROW(make_batchnorm(BatchNormKind::TwoD, {})->setup({128}), Error);
  EXPECT_THROW(make_batchnorm(BatchNormKind::OneD, {})->setup({3, 4, 5}), Error);
}

TEST(BatchNormLayer, LayerBackwardMatchesFiniteDifferencesInFloat) {
  // The layer path in float (the kernels are checked in double): loose tolerance for float.
  const int64_t N = 4, C = 2, S = 3;
  BnHarness h(BatchNormKind::OneD, {}, {C, S});
  h.weight = {1.5f, 0.7f};
  std::vector<double> xd = testing::random_vector(N * C * S, 50);
  const auto r = testing::random_vector(N * C * S, 51);
  auto loss = [&] {
    const auto x = testing::to_float(xd);
    std::vector<float> y(x.size());
    h.layer->forward(y.data(), x.data(), N, {.mode = Mode::Train});
    double s = 0;
    for (size_t i = 0; i < y.size(); ++i) s += y[i] * r[i];
    return s;
  };
  loss();
  const auto x = testing::to_float(xd);
  std::vector<float> y(x.size()), dx(x.size());
  h.layer->forward(y.data(), x.data(), N, {.mode = Mode::Train});
  h.layer->backward(dx.data(), testing::to_float(r).data(), x.data(), y.data(), N);
  testing::expect_gradient("dx", xd, std::vector<double>(dx.begin(), dx.end()), loss, 1e-2, 2e-3);
}

}  // namespace
}  // namespace bnlab
