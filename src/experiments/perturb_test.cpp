// The robustness experiment's perturbations: the eval-mode input gradient against central finite
// differences (through BN with running statistics, a fused BN + ReLU, dropout and pooling), FGSM's
// step and clipping, and the Gaussian noise's determinism and moments.
#include "experiments/perturb.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "bnlab/loss.h"
#include "bnlab/spec.h"
#include "experiments/stats.h"
#include "gradcheck.h"

namespace bnlab::experiments {
namespace {

const char* kNet = R"(
conv1:    Conv2d out_channels=3 kernel_size=3
conv1_bn: BatchNorm2d
          ReLU
          MaxPool2d kernel_size=2
          Dropout p=0.5
          Flatten
fc1:      Linear out_features=6
fc1_bn:   BatchNorm1d
          ReLU
fc2:      Linear out_features=4
          LogSoftmax
)";

DataSource source() {
  DataSource d;
  d.mean = 0.1307f;
  d.std = 0.3081f;
  d.test.count = 5;
  d.test.height = d.test.width = 8;
  return d;
}

TEST(Perturb, EvalModeInputGradientMatchesFiniteDifferences) {
  Network net = build_network(parse_spec(kNet, "net.spec"), {1, 8, 8});
  net.initialize(5);
  // Running statistics far from (0, 1), so that eval mode differs from an identity.
  std::span<float> buffers = net.buffers();
  for (size_t i = 0; i < buffers.size(); ++i) buffers[i] = 0.3f + 0.2f * static_cast<float>(i % 5);
  const int64_t n = 5;
  net.reserve(n);
  const DataSource data = source();
  const std::vector<double> start = testing::random_vector(n * 64, 3, 0.2, 0.5);
  std::vector<float> pixels(start.begin(), start.end());
  const std::vector<uint8_t> labels = {0, 1, 2, 3, 1};
  const std::vector<float> gradient = pixel_gradient(net, data, pixels, labels, n);
  for (float g : net.gradients()) ASSERT_EQ(g, 0.0f) << "parameter gradients left behind";

  std::vector<double> x(pixels.begin(), pixels.end());
  const std::vector<double> analytic(gradient.begin(), gradient.end());
  std::vector<float> scratch;
  testing::expect_gradient("pixels", x, analytic, [&] {
    for (size_t i = 0; i < x.size(); ++i) pixels[i] = static_cast<float>(x[i]);
    return nll_loss(nullptr, forward_pixels(net, data, pixels, n, scratch), labels.data(), n, 4);
  }, 2e-3, 2e-3);  // h small enough that no ReLU or max-pool choice flips, large against float rounding
}

TEST(Perturb, CleanPixelsGiveTheNormalizedBatch) {
  DataSource data = source();
  data.test.images.resize(5 * 64);
  data.test.labels = {0, 1, 2, 3, 4};
  for (size_t i = 0; i < data.test.images.size(); ++i) data.test.images[i] = static_cast<uint8_t>((i * 37) % 256);
  std::vector<int64_t> idx = {4, 0, 2};
  std::vector<float> pixels;
  std::vector<uint8_t> labels;
  gather_pixels(pixels, labels, data.test, idx.data(), 3);
  std::vector<float> batch(3 * 64);
  std::vector<uint8_t> batch_labels(3);
  gather_batch(batch.data(), batch_labels.data(), data.test, data, idx.data(), 3);
  EXPECT_EQ(labels, batch_labels);
  for (size_t i = 0; i < batch.size(); ++i) EXPECT_EQ((pixels[i] - data.mean) / data.std, batch[i]) << i;
}

TEST(Perturb, FgsmStepsBySignAndClips) {
  std::vector<float> pixels = {0.5f, 0.5f, 0.5f, 0.98f, 0.01f};
  fgsm_step(pixels, {2.0f, -0.1f, 0.0f, 1.0f, -3.0f}, 0.05);
  EXPECT_FLOAT_EQ(pixels[0], 0.55f);
  EXPECT_FLOAT_EQ(pixels[1], 0.45f);
  EXPECT_EQ(pixels[2], 0.5f);
  EXPECT_EQ(pixels[3], 1.0f);
  EXPECT_EQ(pixels[4], 0.0f);
}

TEST(Perturb, GaussianNoiseIsDeterministicPerSampleWithTheAskedDeviation) {
  const int64_t size = 20000;
  std::vector<float> a(2 * size, 0.5f), b(size, 0.5f);
  const int64_t both[] = {7, 9}, second[] = {9};
  add_gaussian_noise(a, both, 2, size, 0.05, 11);
  add_gaussian_noise(b, second, 1, size, 0.05, 11);
  EXPECT_TRUE(std::equal(b.begin(), b.end(), a.begin() + size)) << "sample 9 drew other noise in another batch";
  std::vector<double> d(a.begin(), a.begin() + size);
  for (double& v : d) v -= 0.5;
  EXPECT_NEAR(mean(d), 0.0, 0.05 * 4 / std::sqrt(static_cast<double>(size)));
  EXPECT_NEAR(stddev(d), 0.05, 0.05 * 0.03);
  std::vector<float> c(size, 0.5f);
  add_gaussian_noise(c, both, 1, size, 0.05, 12);  // sample 7 under another key
  EXPECT_FALSE(std::equal(c.begin(), c.end(), a.begin()));
}

}  // namespace
}  // namespace bnlab::experiments
