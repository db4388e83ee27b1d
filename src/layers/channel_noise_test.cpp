// ChannelNoise: one shift and scale per channel and step within the asked ranges, the same for
// every sample and position, a function of the step's key alone; its input gradient against
// finite differences; the mean scale in eval; bad settings refused with the spec's line.
#include <gtest/gtest.h>

#include <vector>

#include "bnlab/error.h"
#include "bnlab/layers.h"
#include "bnlab/spec.h"
#include "gradcheck.h"

namespace bnlab {
namespace {

Network noise_net(const std::string& settings, const Shape& input) {
  return build_network(parse_spec("ChannelNoise " + settings + "\n", "noise.spec"), input);
}

TEST(ChannelNoise, OneDrawPerChannelWithinTheRanges) {
  Network net = noise_net("shift=0.5 scale=2", {3, 2, 2});
  net.reserve(4);
  std::vector<float> x(4 * 12);
  for (size_t i = 0; i < x.size(); ++i) x[i] = 0.25f * static_cast<float>(i % 7) - 0.5f;
  const float* y = net.forward(x.data(), 4, {.mode = Mode::Train, .random_key = 99});
  const std::vector<float> first(y, y + x.size());
  for (int64_t c = 0; c < 3; ++c) {
    // y = x * s + m from two different inputs of the channel: solve for s and m.
    const size_t a = static_cast<size_t>(c * 4), b = a + 1;
    const double s = (first[b] - first[a]) / (x[b] - x[a]), m = first[a] - s * x[a];
    EXPECT_GE(s, 1.0);
    EXPECT_LE(s, 2.0);
    EXPECT_GE(m, -0.5);
    EXPECT_LE(m, 0.5);
    for (int64_t i = 0; i < 4; ++i)
      for (int64_t k = 0; k < 4; ++k) {
        const size_t at = static_cast<size_t>((i * 3 + c) * 4 + k);
        EXPECT_NEAR(first[at], x[at] * s + m, 1e-5) << "sample " << i << " channel " << c;
      }
  }
  const float* again = net.forward(x.data(), 4, {.mode = Mode::Train, .random_key = 99});
  EXPECT_TRUE(std::equal(first.begin(), first.end(), again)) << "the same key drew other noise";
  const float* other = net.forward(x.data(), 4, {.mode = Mode::Train, .random_key = 100});
  EXPECT_FALSE(std::equal(first.begin(), first.end(), other)) << "another step drew the same noise";
  const float* eval = net.forward(x.data(), 4, {.mode = Mode::Eval});
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(eval[i], x[i] * 1.5f) << "not the mean scale (1 + 2) / 2 in eval";
}

TEST(ChannelNoise, InputGradientMatchesFiniteDifferences) {
  Network net = noise_net("shift=1 scale=3", {5});
  const int64_t n = 3;
  net.reserve(n);
  std::vector<float> x = testing::to_float(testing::random_vector(n * 5, 4));
  const auto r = testing::random_vector(n * 5, 5);
  auto loss = [&] {
    const float* y = net.forward(x.data(), n, {.mode = Mode::Train, .random_key = 7});
    double s = 0;
    for (int64_t i = 0; i < n * 5; ++i) s += y[i] * r[static_cast<size_t>(i)];
    return s;
  };
  loss();
  std::vector<float> dx(n * 5);
  net.backward(testing::to_float(r).data(), n, dx.data());
  std::vector<double> xd(x.begin(), x.end());
  testing::expect_gradient("input", xd, {dx.begin(), dx.end()}, [&] {
    for (size_t i = 0; i < xd.size(); ++i) x[i] = static_cast<float>(xd[i]);
    return loss();
  }, 1e-2, 1e-4);
}

TEST(ChannelNoise, BadSettingsNameTheLine) {
  try {
    noise_net("scale=0.5", {4});
    FAIL() << "scale 0.5 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("noise.spec:1:"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("scale: must be in [1, 100]"), std::string::npos) << e.what();
  }
  EXPECT_THROW(noise_net("shift=-1", {4}), Error);
}

}  // namespace
}  // namespace bnlab
