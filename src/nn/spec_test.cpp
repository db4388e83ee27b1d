// The spec format: presets build with PyTorch's names and shapes; every kind of mistake is an
// error at its line and column.
#include "bnlab/spec.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "bnlab/error.h"

namespace bnlab {
namespace {

std::string build_error(const std::string& text, const Shape& input = {1, 28, 28}) {
  try {
    build_network(parse_spec(text, "net.spec"), input);
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(Spec, SeedPresetHasTheTutorialsStateDict) {
  Network net = build_network(load_spec("seed"), {1, 28, 28});
  std::vector<std::string> names;
  for (const TensorView& t : net.state_dict()) names.push_back(t.name + ":" + to_string(t.shape));
  const std::vector<std::string> expected = {
      "conv1.weight:32x1x3x3", "conv1.bias:32", "conv1_bn.weight:32", "conv1_bn.bias:32",
      "conv1_bn.running_mean:32", "conv1_bn.running_var:32", "conv1_bn.num_batches_tracked:scalar",
      "conv2.weight:64x32x3x3", "conv2.bias:64", "conv2_bn.weight:64", "conv2_bn.bias:64",
      "conv2_bn.running_mean:64", "conv2_bn.running_var:64", "conv2_bn.num_batches_tracked:scalar",
      "fc1.weight:128x9216", "fc1.bias:128", "fc1_bn.weight:128", "fc1_bn.bias:128",
      "fc1_bn.running_mean:128", "fc1_bn.running_var:128", "fc1_bn.num_batches_tracked:scalar",
      "fc2.weight:10x128", "fc2.bias:10"};
  EXPECT_EQ(names, expected);
  EXPECT_EQ(net.output_shape(), Shape({10}));
}

TEST(Spec, EveryPresetBuilds) {
  for (const std::string& name : preset_names()) {
    Network net = build_network(load_spec(name), {1, 28, 28});
    EXPECT_EQ(net.output_shape(), Shape({10})) << name;
  }
}

// The presets are the files of specs/, byte for byte (cmake/embed_specs.cmake compiles them in).
TEST(Spec, PresetsAreTheFilesOfSpecs) {
  for (const std::string& name : preset_names()) {
    std::ifstream in(std::string(BNLAB_SPECS) + "/" + name + ".spec", std::ios::binary);
    ASSERT_TRUE(in) << name;
    std::ostringstream text;
    text << in.rdbuf();
    EXPECT_EQ(preset_text(name), text.str()) << name;
  }
  EXPECT_EQ(preset_text("no-such-preset"), "");
}

TEST(Spec, UnnamedLayersAreNamedByIndexAsInSequential) {
  Network net = build_network(parse_spec("Flatten\nLinear out_features=3\n", "s"), {2, 2});
  EXPECT_EQ(net.state_dict()[0].name, "1.weight");
}

TEST(Spec, CommentsBlankLinesAndSettingsParse) {
  Network net = build_network(parse_spec("# c\n\n  bn: BatchNorm1d eps=1e-3 momentum=none affine=false # tail\n", "s"), {4});
  EXPECT_EQ(net.state_dict().size(), 3u);  // running_mean, running_var, num_batches_tracked
}

TEST(Spec, ErrorsPointAtLineAndColumn) {
  EXPECT_EQ(build_error("Conv2d out_channels=8 kernel_size=3\nFoo\n"),
            "net.spec:2:1: unknown layer type 'Foo' (known: AdaptiveAvgPool2d, AvgPool2d, BatchNorm1d, BatchNorm2d, "
            "Bias, ChannelNoise, Conv2d, Dropout, Flatten, GroupNorm, InstanceNorm1d, InstanceNorm2d, LayerNorm, "
            "Linear, LogSoftmax, MaxPool2d, ReLU, Scale, Sigmoid, Tanh, Residual ... [shortcut ...] end)");
  EXPECT_EQ(build_error("Conv2d out_channels=8 kernel_size=3 colour=red\n"),
            "net.spec:1:37: Conv2d: unknown key 'colour'");
  EXPECT_EQ(build_error("Conv2d out_channels=eight kernel_size=3\n"),
            "net.spec:1:8: Conv2d: out_channels: 'eight' is not an integer");
  EXPECT_EQ(build_error("Conv2d kernel_size=3\n"), "net.spec:1:1: Conv2d: out_channels: required");
  EXPECT_EQ(build_error("Conv2d out_channels=0 kernel_size=3\n"),
            "net.spec:1:8: Conv2d: out_channels: must be at least 1");
  EXPECT_EQ(build_error("BatchNorm2d affine=maybe\n"),
            "net.spec:1:13: BatchNorm2d: affine: 'maybe' is not true or false");
  EXPECT_EQ(build_error("Dropout p=1.5\n"), "net.spec:1:9: Dropout: p: must be in [0, 1)");
  EXPECT_EQ(build_error("Conv2d out_channels=8 kernel_size=3 stride\n"),
            "net.spec:1:37: expected key=value, got 'stride'");
  EXPECT_EQ(build_error("Conv2d out_channels=8 kernel_size=3 stride=1 stride=2\n"),
            "net.spec:1:46: Conv2d: stride: given twice");
  EXPECT_EQ(build_error("a: ReLU\na: ReLU\n"), "net.spec:2:1: layer name 'a' is used twice");
  EXPECT_EQ(build_error("a-b: ReLU\n"), "net.spec:1:1: layer name 'a-b' must be letters, digits, '_' or '.'");
  EXPECT_EQ(build_error("# nothing\n"), "net.spec: network: no layers");
}

TEST(Spec, ImpossibleShapesNameTheLine) {
  EXPECT_EQ(build_error("ReLU\nLinear out_features=10\n"),
            "net.spec:2:1: Linear: input: expects (features) per sample, got 1x28x28 (add Flatten before it)");
  EXPECT_EQ(build_error("Conv2d out_channels=4 kernel_size=30\n"),
            "net.spec:1:1: Conv2d: kernel_size: kernel 30 is larger than the padded input 1x28x28");
  EXPECT_EQ(build_error("Flatten\nBatchNorm2d\n"),
            "net.spec:2:1: BatchNorm2d: input: expects (C, H, W) per sample, got 784");
  EXPECT_EQ(build_error("Conv2d out_channels=4 kernel_size=3\nBatchNorm2d num_features=5\n"),
            "net.spec:2:13: BatchNorm2d: num_features: 5 given, but the input has 4 channels");
}

// GroupNorm, LayerNorm, InstanceNorm: PyTorch's state_dict names and shapes, their defaults.
TEST(Spec, PerSampleNormsHavePyTorchsTensors) {
  auto names = [](const std::string& text, const Shape& input) {
    std::string s;
    for (const TensorView& t : build_network(parse_spec(text, "s"), input).state_dict()) s += t.name + ":" + to_string(t.shape) + " ";
    return s;
  };
  EXPECT_EQ(names("gn: GroupNorm num_groups=2\n", {4, 3, 3}), "gn.weight:4 gn.bias:4 ");
  EXPECT_EQ(names("gn: GroupNorm num_groups=2 affine=false num_channels=4\n", {4, 3, 3}), "");
  EXPECT_EQ(names("ln: LayerNorm\n", {4, 3, 3}), "ln.weight:4x3x3 ln.bias:4x3x3 ");
  EXPECT_EQ(names("ln: LayerNorm elementwise_affine=false eps=1e-3\n", {128}), "");
  EXPECT_EQ(names("in: InstanceNorm2d\n", {4, 3, 3}), "");
  EXPECT_EQ(names("in: InstanceNorm1d affine=true track_running_stats=true momentum=0.2 num_features=4\n", {4, 5}),
            "in.weight:4 in.bias:4 in.running_mean:4 in.running_var:4 in.num_batches_tracked:scalar ");
}

// Their eval outputs are per sample, so a large eval batch may be cut (BatchNorm without running
// statistics is the one layer that mixes samples).
TEST(Spec, PerSampleNormsDoNotMixSamples) {
  for (const char* line : {"GroupNorm num_groups=2", "LayerNorm", "InstanceNorm2d", "InstanceNorm2d track_running_stats=true"}) {
    EXPECT_TRUE(build_network(parse_spec(line, "s"), {4, 3, 3}).eval_is_per_sample()) << line;
  }
  EXPECT_FALSE(build_network(parse_spec("BatchNorm2d track_running_stats=false", "s"), {4, 3, 3}).eval_is_per_sample());
}

TEST(Spec, PerSampleNormErrorsPointAtLineAndColumn) {
  EXPECT_EQ(build_error("Conv2d out_channels=6 kernel_size=3\nGroupNorm num_groups=4\n"),
            "net.spec:2:1: GroupNorm: num_groups: 4 does not divide the 6 channels");
  EXPECT_EQ(build_error("GroupNorm\n"), "net.spec:1:1: GroupNorm: num_groups: required");
  EXPECT_EQ(build_error("GroupNorm num_groups=0\n"), "net.spec:1:11: GroupNorm: num_groups: must be at least 1");
  EXPECT_EQ(build_error("GroupNorm num_groups=1 eps=0\n"), "net.spec:1:24: GroupNorm: eps: must be positive");
  EXPECT_EQ(build_error("LayerNorm eps=-1e-5\n"), "net.spec:1:11: LayerNorm: eps: must be positive");
  EXPECT_EQ(build_error("LayerNorm affine=true\n"), "net.spec:1:11: LayerNorm: unknown key 'affine'");
  EXPECT_EQ(build_error("InstanceNorm2d momentum=2\n"), "net.spec:1:16: InstanceNorm2d: momentum: must be in [0, 1]");
  EXPECT_EQ(build_error("Flatten\nInstanceNorm2d\n"),
            "net.spec:2:1: InstanceNorm2d: input: expects (C, H, W) per sample, got 784");
  EXPECT_EQ(build_error("InstanceNorm1d\n"),
            "net.spec:1:1: InstanceNorm1d: input: expects (C, L) per sample, got 1x28x28");
  EXPECT_EQ(build_error("GroupNorm num_groups=1 num_channels=3\n"),
            "net.spec:1:24: GroupNorm: num_channels: 3 given, but the input has 1 channels");
}

// Found by fuzz/spec_fuzz: huge sizes overflowed int64 (undefined behaviour) or asked for
// gigabytes. Every size is now checked against kMaxValues before anything is allocated.
TEST(Spec, HugeSizesAreErrorsBeforeAllocating) {
  EXPECT_EQ(build_error("Conv2d out_channels=1 kernel_size=3 padding=4611686018427387904\n"),
            "net.spec:1:1: Conv2d: padding: must be at most 67108864");
  EXPECT_EQ(build_error("Conv2d out_channels=9223372036854775807 kernel_size=3\n"),
            "net.spec:1:1: Conv2d: output: 9223372036854775807x26x26 is too large (more than 67108864 values)");
  EXPECT_EQ(build_error("Conv2d out_channels=1 kernel_size=9000 padding=5000\n"),
            "net.spec:1:1: Conv2d: weight: 1x1x9000x9000 is too large (more than 67108864 values)");
  EXPECT_EQ(build_error("MaxPool2d kernel_size=9223372036854775807 padding=4611686018427387903\n"),
            "net.spec:1:1: MaxPool2d: kernel_size: must be at most 67108864");
  EXPECT_EQ(build_error("Flatten\nLinear out_features=4611686018427387904\n"),
            "net.spec:2:1: Linear: weight: 4611686018427387904x784 is too large (more than 67108864 values)");
  // Each layer within the limit, the network over it: activations per sample, then parameters.
  EXPECT_EQ(build_error("MaxPool2d kernel_size=28\nFlatten\nLinear out_features=60000000\nBatchNorm1d\n"),
            "network: 3: too large: the layers up to here output more than 67108864 values per sample");
  EXPECT_EQ(build_error("MaxPool2d kernel_size=28\nFlatten\nLinear out_features=30000000\n"
                        "fc: Linear out_features=1 bias=false\n"),
            "network: fc.weight: too large: the network's parameters would exceed 67108864 values");
  // Found beside them: a zero-sized input divided by zero in BatchNorm's setup.
  EXPECT_EQ(build_error("BatchNorm2d\n", {0, 28, 28}),
            "net.spec:1:1: BatchNorm2d: input: sizes 0x28x28 must all be positive");
}

TEST(Spec, UnknownModelNamesPresets) {
  try {
    load_spec("/nonexistent/model.spec");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "/nonexistent/model.spec: model: neither a preset (seed, seed-nobn, "
                                     "seed-bn-after-relu, seed-bn-conv-only, paper-mlp, paper-mlp-bn, "
                                     "seed-groupnorm, seed-layernorm) "
                                     "nor a readable spec file");
  }
}

}  // namespace
}  // namespace bnlab
