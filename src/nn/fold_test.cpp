// Folding BN into the preceding layer changes nothing in eval mode but the arithmetic's rounding.
#include "bnlab/fold.h"

#include <gtest/gtest.h>

#include "bnlab/spec.h"
#include "gradcheck.h"

namespace bnlab {
namespace {

// Randomizes running statistics and BN affine parameters, as after training (variances positive).
void perturb_batchnorm(Network& net) {
  for (const TensorView& t : net.state_dict()) {
    if (t.dtype != DType::F32 || t.name.find("bn") == std::string::npos) continue;
    float* v = static_cast<float*>(t.data);
    const bool positive = t.name.find("running_var") != std::string::npos || t.name.find(".weight") != std::string::npos;
    for (int64_t i = 0; i < numel(t.shape); ++i) v[i] = positive ? 0.5f + 0.1f * (i % 7) : 0.05f * ((i % 5) - 2);
  }
}

// Both networks' eval outputs on the same n random inputs agree up to the fold's rounding.
void expect_same_eval(Network& net, Network& folded, int64_t n, uint32_t seed) {
  net.reserve(n);
  folded.reserve(n);
  const int64_t in = numel(net.input_shape()), out = numel(net.output_shape());
  const auto x = testing::to_float(testing::random_vector(n * in, seed));
  const float* a = net.forward(x.data(), n, {.mode = Mode::Eval});
  const std::vector<float> expected(a, a + n * out);
  const float* b = folded.forward(x.data(), n, {.mode = Mode::Eval});
  for (int64_t i = 0; i < n * out; ++i) EXPECT_NEAR(b[i], expected[i], 1e-4 + 1e-4 * std::abs(expected[i])) << i;
}

TEST(FoldBatchNorm, FoldedAndUnfoldedEvalOutputsAgree) {
  const NetworkSpec spec = load_spec("seed");
  Network net = build_network(spec, {1, 28, 28});
  net.initialize(4);
  perturb_batchnorm(net);
  FoldedNetwork folded = fold_batchnorm(net);
  EXPECT_EQ(folded.net.layer_count(), net.layer_count() - 3);
  EXPECT_EQ(folded.folded, 3);
  EXPECT_EQ(folded.text.find("BatchNorm"), std::string::npos);
  // The text reads back to the same network.
  Network again = build_network(parse_spec(folded.text, "folded"), {1, 28, 28});
  EXPECT_EQ(again.state_dict().size(), folded.net.state_dict().size());

  expect_same_eval(net, folded.net, 8, 9);
}

// The fold works on the built network, so BN inside residual blocks folds too, at any depth;
// a BN after a ReLU, and the block's own structure, stay.
TEST(FoldBatchNorm, FoldsInsideResidualBlocks) {
  const char* text = R"(stem: Conv2d out_channels=4 kernel_size=3 padding=1 bias=false
stem_bn: BatchNorm2d
      ReLU
block: Residual
  conv: Conv2d out_channels=4 kernel_size=3 padding=1
  bn: BatchNorm2d eps=0.001
  ReLU
  inner: Residual
    c2: Conv2d out_channels=4 kernel_size=1
    bn2: BatchNorm2d momentum=none
  end
end
      ReLU
after_bn: BatchNorm2d
      Flatten
fc: Linear out_features=6
fc_bn: BatchNorm1d
      LogSoftmax
)";
  Network net = build_network(parse_spec(text, "residual"), {2, 6, 6});
  net.initialize(3);
  perturb_batchnorm(net);
  FoldedNetwork folded = fold_batchnorm(net);
  EXPECT_EQ(folded.folded, 4);  // stem_bn, block.bn, block.inner.bn2, fc_bn; after_bn follows a ReLU
  EXPECT_EQ(folded.text.find("bn2"), std::string::npos) << folded.text;
  EXPECT_NE(folded.text.find("after_bn: BatchNorm2d"), std::string::npos) << folded.text;
  // The folded convolutions gained the bias they lacked, under the original names.
  bool stem_bias = false;
  for (const TensorView& t : folded.net.state_dict()) stem_bias |= t.name == "stem.bias";
  EXPECT_TRUE(stem_bias);
  // The text reads back to the same tensors.
  Network again = build_network(parse_spec(folded.text, "folded"), {2, 6, 6});
  EXPECT_EQ(again.state_dict().size(), folded.net.state_dict().size());

  net.reserve(5);
  folded.net.reserve(5);
  const auto x = testing::to_float(testing::random_vector(5 * 72, 4));
  const float* a = net.forward(x.data(), 5, {.mode = Mode::Eval});
  const std::vector<float> expected(a, a + 30);
  const float* b = folded.net.forward(x.data(), 5, {.mode = Mode::Eval});
  for (int i = 0; i < 30; ++i) EXPECT_NEAR(b[i], expected[i], 1e-5 + 1e-4 * std::abs(expected[i])) << i;
}

// A block's shortcut layers fold apart from its body: the shortcut's BN into the shortcut's
// convolution, never a body's last convolution into a BN that starts the shortcut.
TEST(FoldBatchNorm, FoldsShortcutsApartFromTheBody) {
  const char* text = R"(down: Residual
  conv: Conv2d out_channels=4 kernel_size=3 stride=2 padding=1 bias=false
  bn: BatchNorm2d
  ReLU
  last: Conv2d out_channels=4 kernel_size=1
shortcut
  sbn: BatchNorm2d
  sconv: Conv2d out_channels=4 kernel_size=1 stride=2 bias=false
  sconv_bn: BatchNorm2d
end
pad: Residual shortcut=pad
  c: Conv2d out_channels=6 kernel_size=3 stride=2 padding=1 bias=false
  c_bn: BatchNorm2d
  gate: Scale
end
      AvgPool2d kernel_size=2
      AdaptiveAvgPool2d output_size=1
      Flatten
fc: Linear out_features=3
      LogSoftmax
)";
  Network net = build_network(parse_spec(text, "shortcuts"), {2, 8, 8});
  net.initialize(5);
  perturb_batchnorm(net);
  for (const TensorView& t : net.state_dict())
    if (t.name == "pad.gate.weight") *static_cast<float*>(t.data) = 0.8f;
  FoldedNetwork folded = fold_batchnorm(net);
  EXPECT_EQ(folded.folded, 3) << folded.text;  // down.bn, down.sconv_bn, pad.c_bn
  EXPECT_NE(folded.text.find("sbn: BatchNorm2d"), std::string::npos) << "a BN first in the shortcut stays: " << folded.text;
  EXPECT_NE(folded.text.find("pad: Residual shortcut=pad"), std::string::npos) << folded.text;
  Network again = build_network(parse_spec(folded.text, "folded"), {2, 8, 8});
  EXPECT_EQ(again.state_dict().size(), folded.net.state_dict().size());
  expect_same_eval(net, folded.net, 5, 6);
}

// A built network written as a spec builds the same network again: the same names, shapes and
// settings (those a summary shows), for every preset.
TEST(SpecText, BuiltNetworksReadBackToTheSameNetwork) {
  for (const std::string& name : preset_names()) {
    Network net = build_network(load_spec(name), {1, 28, 28});
    const std::string text = spec_text(net);
    Network again = build_network(parse_spec(text, name + " as text"), {1, 28, 28});
    ASSERT_EQ(again.layer_count(), net.layer_count()) << text;
    for (size_t i = 0; i < net.layer_count(); ++i) {
      EXPECT_EQ(again.layer_name(i), net.layer_name(i));
      EXPECT_EQ(again.layer(i).describe(), net.layer(i).describe());
    }
    const auto a = net.state_dict(), b = again.state_dict();
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].name + to_string(a[i].shape), b[i].name + to_string(b[i].shape));
    EXPECT_EQ(spec_text(again), text);
  }
}

// The per-sample norms write back as specs too (and InstanceNorm's switches).
TEST(SpecText, PerSampleNormsReadBack) {
  const std::string text =
      "c: Conv2d out_channels=4 kernel_size=3\n"
      "gn: GroupNorm num_groups=2 eps=0.001 affine=false\n"
      "ln: LayerNorm elementwise_affine=false\n"
      "in: InstanceNorm2d momentum=0.2 affine=true track_running_stats=true\n"
      "f: Flatten\n"
      "ln1: LayerNorm eps=0.0001\n";
  Network net = build_network(parse_spec(text, "s"), {1, 6, 6});
  EXPECT_EQ(spec_text(net), spec_text(build_network(parse_spec(spec_text(net), "again"), {1, 6, 6})));
  EXPECT_NE(spec_text(net).find("gn: GroupNorm num_groups=2 eps=0.001 affine=false"), std::string::npos) << spec_text(net);
  EXPECT_NE(spec_text(net).find("in: InstanceNorm2d momentum=0.2 affine=true track_running_stats=true"), std::string::npos);
  EXPECT_EQ(net.layer(1).describe(), "2, 4, eps=0.001000, affine=False");
  EXPECT_EQ(net.layer(2).describe(), "(4, 4, 4), elementwise_affine=False");
  EXPECT_EQ(net.layer(5).describe(), "(64,), eps=0.000100");
}

// Fold matches LayerKind::BatchNorm only: GroupNorm and LayerNorm stay, and eval gives the same.
TEST(FoldBatchNorm, LeavesPerSampleNormsAlone) {
  const NetworkSpec spec = parse_spec(
      "conv1: Conv2d out_channels=4 kernel_size=3\ngn: GroupNorm num_groups=2\nReLU\n"
      "conv2: Conv2d out_channels=4 kernel_size=3\nbn: BatchNorm2d\nln: LayerNorm\nFlatten\n"
      "fc: Linear out_features=3\n", "s");
  Network net = build_network(spec, {1, 8, 8});
  net.initialize(5);
  perturb_batchnorm(net);
  FoldedNetwork folded = fold_batchnorm(net);
  EXPECT_EQ(folded.folded, 1);
  EXPECT_NE(folded.text.find("gn: GroupNorm num_groups=2"), std::string::npos) << folded.text;
  EXPECT_NE(folded.text.find("ln: LayerNorm"), std::string::npos) << folded.text;
  expect_same_eval(net, folded.net, 4, 11);
}

TEST(FoldBatchNorm, LeavesBatchNormWithoutRunningStatisticsAlone) {
  const NetworkSpec spec = parse_spec("c: Conv2d out_channels=2 kernel_size=3\nb: BatchNorm2d track_running_stats=false\n", "s");
  Network net = build_network(spec, {1, 5, 5});
  FoldedNetwork folded = fold_batchnorm(net);
  EXPECT_EQ(folded.net.layer_count(), 2u);
}

}  // namespace
}  // namespace bnlab
