// Folding BN into the preceding layer changes nothing in eval mode but the arithmetic's rounding.
#include "bnlab/fold.h"

#include <gtest/gtest.h>

#include "gradcheck.h"

namespace bnlab {
namespace {

TEST(FoldBatchNorm, FoldedAndUnfoldedEvalOutputsAgree) {
  const NetworkSpec spec = load_spec("seed");
  Network net = build_network(spec, {1, 28, 28});
  net.initialize(4);
  // Running statistics and affine parameters away from their defaults, as after training.
  for (const TensorView& t : net.state_dict()) {
    if (t.dtype != DType::F32 || t.name.find("_bn.") == std::string::npos) continue;
    float* v = static_cast<float*>(t.data);
    const bool positive = t.name.find("running_var") != std::string::npos || t.name.find(".weight") != std::string::npos;
    for (int64_t i = 0; i < numel(t.shape); ++i) v[i] = positive ? 0.5f + 0.1f * (i % 7) : 0.05f * ((i % 5) - 2);
  }
  FoldedNetwork folded = fold_batchnorm(spec, net, {1, 28, 28});
  EXPECT_EQ(folded.net.layer_count(), net.layer_count() - 3);
  EXPECT_EQ(folded.text.find("BatchNorm"), std::string::npos);
  // The text reads back to the same network.
  Network again = build_network(parse_spec(folded.text, "folded"), {1, 28, 28});
  EXPECT_EQ(again.state_dict().size(), folded.net.state_dict().size());

  net.reserve(8);
  folded.net.reserve(8);
  const auto x = testing::to_float(testing::random_vector(8 * 784, 9));
  const float* a = net.forward(x.data(), 8, {.mode = Mode::Eval});
  const std::vector<float> expected(a, a + 80);
  const float* b = folded.net.forward(x.data(), 8, {.mode = Mode::Eval});
  for (int i = 0; i < 80; ++i) EXPECT_NEAR(b[i], expected[i], 1e-4 + 1e-4 * std::abs(expected[i])) << i;
}

TEST(FoldBatchNorm, LeavesBatchNormWithoutRunningStatisticsAlone) {
  const NetworkSpec spec = parse_spec("c: Conv2d out_channels=2 kernel_size=3\nb: BatchNorm2d track_running_stats=false\n", "s");
  Network net = build_network(spec, {1, 5, 5});
  FoldedNetwork folded = fold_batchnorm(spec, net, {1, 5, 5});
  EXPECT_EQ(folded.net.layer_count(), 2u);
}

}  // namespace
}  // namespace bnlab
