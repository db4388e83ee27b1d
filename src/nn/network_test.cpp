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

// Inference runs pieces and folds BN (eval), ReLU and a 2x2 max-pool into the convolution before
// them; every output must be the bits of the plain layer-by-layer eval pass. Running statistics
// and BN weights are random, so that the folded affine map is not the identity. Networks: the
// seed (direct conv1 + BN + ReLU, Winograd conv2 + BN + ReLU + pool), BN after the ReLU, a
// convolution with a ReLU and a pool but no BN, and an odd-sized output whose pool cannot fold.
TEST(Network, FusedInferenceGivesTheLayerByLayerBits) {
  const char* kNoBn = "Conv2d out_channels=6 kernel_size=3\nReLU\nMaxPool2d kernel_size=2\nFlatten\nLinear out_features=10\n";
  const char* kOdd = "Conv2d out_channels=4 kernel_size=3\nConv2d out_channels=6 kernel_size=3\nBatchNorm2d\nReLU\n"
                     "MaxPool2d kernel_size=2\nFlatten\nLinear out_features=10\n";
  const std::pair<std::string, Shape> cases[] = {{preset_text("seed"), {1, 28, 28}},
                                                 {preset_text("seed-bn-after-relu"), {1, 28, 28}},
                                                 {kNoBn, {4, 12, 12}},
                                                 {kOdd, {4, 11, 11}}};
  for (const auto& [text, shape] : cases) {
    Network net = build_network(parse_spec(text, "case"), shape);
    net.initialize(5);
    const auto stats = testing::random_vector(net.buffers().size(), 8, 0.5, 1.0);
    for (size_t i = 0; i < stats.size(); ++i) net.buffers()[i] = static_cast<float>(std::abs(stats[i]) + 0.1);  // variances too
    for (const TensorView& t : net.named_parameters()) {
      if (t.name.find("bn.weight") == std::string::npos && t.name.find("bn.bias") == std::string::npos) continue;
      const auto v = testing::random_vector(numel(t.shape), 9, 0.7);
      for (int64_t j = 0; j < numel(t.shape); ++j) static_cast<float*>(t.data)[j] = static_cast<float>(v[j]);
    }
    // Pieces of 32, 32 and 6, against plain batches of the same sizes: a GEMM's last bits may
    // depend on its number of rows, and this test is about the fusion.
    const int64_t per_sample = numel(shape), n = 70;
    const auto x = testing::to_float(testing::random_vector(n * per_sample, 10));
    net.reserve(32);
    net.reserve_inference(n);
    const float* fused = net.forward(x.data(), n, {.mode = Mode::Eval});
    const std::vector<float> all(fused, fused + n * 10);
    for (int64_t i = 0; i < n; i += 32) {
      const int64_t len = std::min<int64_t>(32, n - i);
      const float* plain = net.forward(x.data() + i * per_sample, len, {.mode = Mode::Eval});
      for (int64_t k = 0; k < len * 10; ++k) {
        ASSERT_TRUE(std::isfinite(plain[k]));
        ASSERT_EQ(plain[k], all[i * 10 + k]) << text << "sample " << i + k / 10;
      }
    }
    // The inference executor without its fusions: every layer on its own, the same bits again.
    net.reserve_inference(n, {.fusion = Fusion::None});
    const float* unfused = net.forward(x.data(), n, {.mode = Mode::Eval});
    for (int64_t k = 0; k < n * 10; ++k) ASSERT_EQ(unfused[k], all[k]) << text << "unfused, value " << k;
  }
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

TEST(Network, FusedBatchNormReluGivesTheSameOutputsAndGradients) {
  auto run = [](bool fuse, std::vector<float>* grads, int64_t* storage) {
    Network net = build_network(load_spec("seed"), {1, 28, 28});
    net.initialize(11);
    net.reserve(6, {.fusion = fuse ? Fusion::Full : Fusion::None});
    const auto x = testing::to_float(testing::random_vector(6 * 784, 12));
    const float* y = net.forward(x.data(), 6, {.mode = Mode::Train, .random_key = 5});
    std::vector<float> out(y, y + 60);
    std::vector<float> dout(60);
    for (int i = 0; i < 60; ++i) dout[i] = static_cast<float>((i % 7) - 3) * 0.01f;
    net.zero_grad();
    net.backward(dout.data(), 6);
    grads->assign(net.gradients().begin(), net.gradients().end());
    *storage = 0;
    for (size_t i = 0; i < net.layer_count(); ++i) *storage += net.activation(i) != (i ? net.activation(i - 1) : nullptr);
    return out;
  };
  std::vector<float> g_plain, g_fused;
  int64_t buffers_plain = 0, buffers_fused = 0;
  const auto y_plain = run(false, &g_plain, &buffers_plain);
  const auto y_fused = run(true, &g_fused, &buffers_fused);
  EXPECT_EQ(y_plain, y_fused);
  ASSERT_EQ(g_plain.size(), g_fused.size());
  for (size_t i = 0; i < g_plain.size(); ++i) EXPECT_NEAR(g_plain[i], g_fused[i], 1e-6 + 1e-5 * std::abs(g_plain[i])) << i;
  EXPECT_EQ(buffers_fused, buffers_plain - 3);  // the three ReLUs after BN keep no buffer
}

// conv2_bn, its ReLU and the 2x2 pool of the seed network run as one layer in training (Full),
// only the pool's output written: the same bits as the three one by one (None), outputs, input
// and parameter gradients and running statistics alike; and not in eval mode, where BN takes its
// running statistics (the fused kernels are for batch statistics).
TEST(Network, FusedMaxPoolTrainingGivesTheLayersBits) {
  struct Run {
    std::vector<float> out, dx, grads, buffers;
    bool bn_written = false, eval_bn_written = false;
  };
  auto run = [](Fusion fusion) {
    Network net = build_network(load_spec("seed"), {1, 28, 28});
    net.initialize(13);
    net.reserve(7, {.fusion = fusion});
    const auto x = testing::to_float(testing::random_vector(7 * 784, 14));
    std::vector<float> dout(70);
    for (int i = 0; i < 70; ++i) dout[i] = static_cast<float>((i % 5) - 2) * 0.02f;
    Run r;
    const size_t bn = 4;  // conv2_bn
    EXPECT_EQ(net.layer_name(bn), "conv2_bn");
    for (int step = 0; step < 2; ++step) {
      const float* y = net.forward(x.data(), 7, {.mode = Mode::Train, .random_key = 3});
      r.out.insert(r.out.end(), y, y + 70);
      r.bn_written = net.activation(bn) != nullptr;
      net.zero_grad();
      r.dx.assign(x.size(), 0.0f);
      net.backward(dout.data(), 7, r.dx.data());
    }
    r.grads.assign(net.gradients().begin(), net.gradients().end());
    r.buffers.assign(net.buffers().begin(), net.buffers().end());
    net.forward(x.data(), 7, {.mode = Mode::Eval});
    r.eval_bn_written = net.activation(bn) != nullptr;
    return r;
  };
  const Run fused = run(Fusion::Full), plain = run(Fusion::None);
  EXPECT_FALSE(fused.bn_written);  // the pool was fused
  EXPECT_TRUE(plain.bn_written);
  EXPECT_TRUE(fused.eval_bn_written);
  EXPECT_EQ(fused.out, plain.out);
  EXPECT_EQ(fused.dx, plain.dx);
  EXPECT_EQ(fused.grads, plain.grads);
  EXPECT_EQ(fused.buffers, plain.buffers);
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
