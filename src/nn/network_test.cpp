// Network plumbing: the whole seed network's gradients against finite differences (float, so a
// loose bound), activation aliasing of views, inference buffers, and reproducibility.
#include "bnlab/network.h"

#include <gtest/gtest.h>

#include <cmath>

#include "bnlab/error.h"
#include "bnlab/spec.h"
#include "bnlab/threads.h"
#include "gradcheck.h"

namespace bnlab {
namespace {

// Smooth on purpose: ReLU and max-pooling have kinks that float finite differences trip over
// (their kernels are checked in double on their own); this test is about the plumbing.
const char* kSmallNet = R"(
c:  Conv2d out_channels=3 kernel_size=3 padding=1 stride=2
cb: BatchNorm2d
    Dropout p=0
    Flatten
f:  Linear out_features=5
fb: BatchNorm1d
o:  Linear out_features=4
    LogSoftmax
)";

double loss_of(Network& net, const std::vector<float>& x, int64_t n, const std::vector<double>& r) {
  const float* y = net.forward(x.data(), n, {.mode = Mode::Train});
  double s = 0;
  for (int64_t i = 0; i < n * 4; ++i) s += y[i] * r[i];
  return s;
}

TEST(Network, ParameterGradientsMatchFiniteDifferences) {
  Network net = build_network(parse_spec(kSmallNet, "small"), {2, 6, 6});
  net.initialize(3);
  net.reserve(5);
  const int64_t n = 5;
  const auto x = testing::to_float(testing::random_vector(n * 72, 1));
  const auto r = testing::random_vector(n * 4, 2);
  loss_of(net, x, n, r);
  net.zero_grad();
  net.backward(testing::to_float(r).data(), n);
  std::vector<double> params(net.parameters().begin(), net.parameters().end());
  const std::vector<double> analytic(net.gradients().begin(), net.gradients().end());
  auto loss = [&] {
    for (size_t i = 0; i < params.size(); ++i) net.parameters()[i] = static_cast<float>(params[i]);
    return loss_of(net, x, n, r);
  };
  testing::expect_gradient("parameters", params, analytic, loss, 1e-2, 5e-3);
}

TEST(Network, LargeEvalBatchesUseInferenceBuffersWithSameResults) {
  Network net = build_network(load_spec("seed"), {1, 28, 28});
  net.initialize(1);
  net.reserve(4);
  net.reserve_inference(9);
  const auto x = testing::to_float(testing::random_vector(9 * 784, 3));
  const float* big = net.forward(x.data(), 9, {.mode = Mode::Eval});
  const std::vector<float> all(big, big + 90);
  const float* small = net.forward(x.data(), 4, {.mode = Mode::Eval});
  for (int i = 0; i < 40; ++i) EXPECT_EQ(small[i], all[i]);
  EXPECT_THROW(net.forward(x.data(), 9, {.mode = Mode::Train}), Error);
}

TEST(Network, SameSeedSameThreadsSameBits) {
  auto run = [](int threads) {
    set_threads(threads);
    Network net = build_network(load_spec("seed"), {1, 28, 28});
    net.initialize(7);
    net.reserve(8);
    const auto x = testing::to_float(testing::random_vector(8 * 784, 4));
    std::vector<float> dout(80, 0.1f);
    for (int step = 0; step < 2; ++step) {
      net.forward(x.data(), 8, {.mode = Mode::Train, .random_key = static_cast<uint64_t>(step)});
      net.zero_grad();
      net.backward(dout.data(), 8);
    }
    return std::vector<float>(net.gradients().begin(), net.gradients().end());
  };
  EXPECT_EQ(run(2), run(2));
  EXPECT_EQ(run(1), run(1));
  set_threads(0);
}

TEST(Network, InitializationFollowsPyTorchBounds) {
  Network net = build_network(load_spec("seed"), {1, 28, 28});
  net.initialize(1);
  for (const TensorView& t : net.named_parameters()) {
    const float* v = static_cast<const float*>(t.data);
    const int64_t n = numel(t.shape);
    double lo = 1e9, hi = -1e9;
    for (int64_t i = 0; i < n; ++i) {
      lo = std::min<double>(lo, v[i]);
      hi = std::max<double>(hi, v[i]);
    }
    if (t.name.find("_bn.weight") != std::string::npos) {
      EXPECT_EQ(lo, 1.0) << t.name;
      EXPECT_EQ(hi, 1.0) << t.name;
    } else if (t.name.find("_bn.bias") != std::string::npos) {
      EXPECT_EQ(lo, 0.0) << t.name;
      EXPECT_EQ(hi, 0.0) << t.name;
    } else {
      const double fan_in = t.name.rfind("conv1", 0) == 0 ? 9 : t.name.rfind("conv2", 0) == 0 ? 288
                            : t.name.rfind("fc1", 0) == 0 ? 9216 : 128;
      const double bound = 1 / std::sqrt(fan_in);
      EXPECT_LE(hi, bound) << t.name;
      EXPECT_GE(lo, -bound) << t.name;
      if (n >= 100) {
        EXPECT_GT(hi - lo, 1.8 * bound) << t.name;  // spread over the whole range
      }
    }
  }
}

}  // namespace
}  // namespace bnlab
