// Residual blocks: the spec syntax (Residual ... end), tensor names, y = x + f(x), gradients of
// parameters and input against finite differences (float, smooth layers, as nn/network_test.cpp),
// and file:line:col errors.
#include <gtest/gtest.h>

#include <cmath>

#include "bnlab/error.h"
#include "bnlab/layers.h"
#include "bnlab/spec.h"
#include "gradcheck.h"

namespace bnlab {
namespace {

std::string build_error(const std::string& text, const Shape& input = {8}) {
  try {
    build_network(parse_spec(text, "net.spec"), input);
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

// Smooth on purpose (Tanh, no ReLU): float finite differences trip over kinks.
const char* kNet = R"(
in:   Linear out_features=6
res:  Residual
  fc:   Linear out_features=6
        BatchNorm1d
        Tanh
        Residual          # nested, unnamed: "res.3"
          Linear out_features=6
          Sigmoid
        end
        Linear out_features=6
      end
      Tanh
out:  Linear out_features=3
      LogSoftmax
)";

TEST(Residual, TensorNamesFollowTheBlocks) {
  Network net = build_network(parse_spec(kNet, "net.spec"), {5});
  std::vector<std::string> names;
  for (const TensorView& t : net.state_dict()) names.push_back(t.name);
  const std::vector<std::string> expected = {
      "in.weight", "in.bias", "res.fc.weight", "res.fc.bias", "res.1.weight", "res.1.bias",
      "res.1.running_mean", "res.1.running_var", "res.1.num_batches_tracked", "res.3.0.weight",
      "res.3.0.bias", "res.4.weight", "res.4.bias", "out.weight", "out.bias"};
  EXPECT_EQ(names, expected);
  EXPECT_EQ(net.layer_count(), 5u);
  EXPECT_EQ(net.layer(1).type(), "Residual");
  EXPECT_EQ(net.layer_name(2), "2");  // the unnamed Tanh after the block: index 2 at its level
}

TEST(Residual, ForwardAddsTheInput) {
  Network net = build_network(parse_spec("Residual\nl: Linear out_features=3\nend\n", "net.spec"), {3});
  // W = 2 I, b = (1, 2, 3): y = x + 2x + b
  float* w = static_cast<float*>(net.state_dict()[0].data);
  float* b = static_cast<float*>(net.state_dict()[1].data);
  for (int i = 0; i < 9; ++i) w[i] = i % 4 == 0 ? 2.0f : 0.0f;
  for (int i = 0; i < 3; ++i) b[i] = static_cast<float>(i + 1);
  net.reserve(2);
  const float x[6] = {1, -1, 0.5f, 0, 2, -3};
  const float* y = net.forward(x, 2, {.mode = Mode::Train});
  for (int i = 0; i < 6; ++i) EXPECT_FLOAT_EQ(y[i], 3 * x[i] + static_cast<float>(i % 3 + 1)) << i;
}

// sum(y * r) for networks of 3 outputs
double loss_of(Network& net, const std::vector<float>& x, int64_t n, const std::vector<double>& r) {
  const float* y = net.forward(x.data(), n, {.mode = Mode::Train});
  double s = 0;
  for (int64_t i = 0; i < n * 3; ++i) s += y[i] * r[i];
  return s;
}

TEST(Residual, GradientsMatchFiniteDifferences) {
  Network net = build_network(parse_spec(kNet, "net.spec"), {5});
  net.initialize(4);
  const int64_t n = 6;
  net.reserve(n);
  std::vector<float> x = testing::to_float(testing::random_vector(n * 5, 1));
  const auto r = testing::random_vector(n * 3, 2);
  loss_of(net, x, n, r);
  net.zero_grad();
  std::vector<float> dinput(n * 5);
  net.backward(testing::to_float(r).data(), n, dinput.data());

  std::vector<double> params(net.parameters().begin(), net.parameters().end());
  const std::vector<double> analytic(net.gradients().begin(), net.gradients().end());
  testing::expect_gradient("parameters", params, analytic, [&] {
    for (size_t i = 0; i < params.size(); ++i) net.parameters()[i] = static_cast<float>(params[i]);
    return loss_of(net, x, n, r);
  }, 1e-2, 5e-3);

  std::vector<double> xd(x.begin(), x.end());
  const std::vector<double> dx(dinput.begin(), dinput.end());
  testing::expect_gradient("input", xd, dx, [&] {
    for (size_t i = 0; i < xd.size(); ++i) x[i] = static_cast<float>(xd[i]);
    return loss_of(net, x, n, r);
  }, 1e-2, 5e-3);
}

TEST(Residual, LargeEvalBatchesGiveTheSameOutputs) {
  Network net = build_network(parse_spec(kNet, "net.spec"), {5});
  net.initialize(9);
  net.reserve(4);
  net.reserve_inference(10);
  const auto x = testing::to_float(testing::random_vector(10 * 5, 3));
  const float* big = net.forward(x.data(), 10, {.mode = Mode::Eval});
  const std::vector<float> all(big, big + 30);
  const float* small = net.forward(x.data(), 4, {.mode = Mode::Eval});
  for (int i = 0; i < 12; ++i) EXPECT_EQ(small[i], all[i]) << i;
}

TEST(Residual, ErrorsPointAtLineAndColumn) {
  EXPECT_EQ(build_error("r: Residual\n   Linear out_features=4\n   end\n"),
            "net.spec:1:4: Residual: output: the block turns 8 into 4; x + f(x) needs f to keep the shape (or a "
            "shortcut: shortcut=pad, or shortcut layers)");
  EXPECT_EQ(build_error("Residual\nReLU\n"), "net.spec:1:1: Residual block is not closed by a line 'end'");
  EXPECT_EQ(build_error("ReLU\n  end\n"), "net.spec:2:3: 'end' without a Residual block to close");
  EXPECT_EQ(build_error("ReLU\nResidual\nend\n"), "net.spec:2:1: Residual block has no layers");
  EXPECT_EQ(build_error("Residual\nReLU\nend now=1\n"), "net.spec:3:5: 'end' takes no settings");
  EXPECT_EQ(build_error("Residual\nReLU\ne: end\n"), "net.spec:3:1: 'end' closes a block and takes no name");
  EXPECT_EQ(build_error("Residual depth=2\nReLU\nend\n"), "net.spec:1:10: Residual: unknown key 'depth'");
  EXPECT_EQ(build_error("Residual\n  Flatten\n  Conv2d out_channels=2 kernel_size=1\nend\n"),
            "net.spec:3:3: Conv2d: input: expects (C, H, W) per sample, got 8");
  EXPECT_EQ(build_error("Residual\na: ReLU\na: ReLU\nend\n"), "net.spec:3:1: layer name 'a' is used twice");
  // The same name at two levels is two tensors, "a.weight" and "b.a.weight".
  EXPECT_EQ(build_error("a: Linear out_features=8\nb: Residual\na: Linear out_features=8\nend\n"), "no error");
}

// A convolutional network with every shortcut kind and the scalar layers, smooth throughout
// (Tanh, average pools) so that float finite differences hold.
const char* kConvNet = R"(
stem: Conv2d out_channels=2 kernel_size=3 padding=1
down: Residual
  conv: Conv2d out_channels=3 kernel_size=3 stride=2 padding=1
  bn: BatchNorm2d
  Tanh
shortcut
  Conv2d out_channels=3 kernel_size=1 stride=2 bias=false
  BatchNorm2d
end
pad: Residual shortcut=pad
  pre: Bias
  conv: Conv2d out_channels=5 kernel_size=3 stride=2 padding=1
  Tanh
  gate: Scale
  post: Bias
end
pool: AvgPool2d kernel_size=2 stride=1 padding=1
gap: AdaptiveAvgPool2d output_size=1
Flatten
out: Linear out_features=3
)";

TEST(Residual, ShortcutLayersAreNamedInTheBlock) {
  Network net = build_network(parse_spec(kConvNet, "net.spec"), {1, 7, 7});
  std::vector<std::string> names;
  for (const TensorView& t : net.named_parameters()) names.push_back(t.name);
  const std::vector<std::string> expected = {
      "stem.weight", "stem.bias", "down.conv.weight", "down.conv.bias", "down.bn.weight", "down.bn.bias",
      "down.shortcut.0.weight", "down.shortcut.1.weight", "down.shortcut.1.bias", "pad.pre.bias", "pad.conv.weight",
      "pad.conv.bias", "pad.gate.weight", "pad.post.bias", "out.weight", "out.bias"};
  EXPECT_EQ(names, expected);
  EXPECT_EQ(net.output_shape(), (Shape{3}));
  // the spec written back builds the same network
  const std::string text = spec_text(net);
  EXPECT_NE(text.find("pad: Residual shortcut=pad\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\nshortcut\n"), std::string::npos) << text;
  EXPECT_EQ(spec_text(build_network(parse_spec(text, "written.spec"), {1, 7, 7})), text);
}

TEST(Residual, ZeroPadShortcutSamplesAndWidens) {
  // f = 0 (a zero Scale): y is the shortcut alone, x[:, :, ::2, ::2] then a zero channel.
  Network net = build_network(parse_spec("Residual shortcut=pad\n  Conv2d out_channels=2 kernel_size=1 stride=2\n  Scale init=0\nend\n", "net.spec"), {1, 3, 3});
  net.initialize(1);
  net.reserve(1);
  const float x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  const float* y = net.forward(x, 1, {.mode = Mode::Train});
  const float expected[8] = {1, 3, 7, 9, 0, 0, 0, 0};
  for (int i = 0; i < 8; ++i) EXPECT_EQ(y[i], expected[i]) << i;
  // and the gradient goes back to the sampled positions only, plus f's (zero, through the Scale)
  const float dy[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  float dx[9];
  net.zero_grad();
  net.backward(dy, 1, dx);
  const float dx_expected[9] = {1, 0, 2, 0, 0, 0, 3, 0, 4};
  for (int i = 0; i < 9; ++i) EXPECT_EQ(dx[i], dx_expected[i]) << i;
}

TEST(Residual, ShortcutsScalarsAndPoolsMatchFiniteDifferences) {
  Network net = build_network(parse_spec(kConvNet, "net.spec"), {1, 7, 7});
  net.initialize(5);
  for (const TensorView& t : net.named_parameters())  // Scale and Bias away from 1 and 0
    if (t.name == "pad.gate.weight" || t.name.ends_with("pre.bias") || t.name.ends_with("post.bias")) *static_cast<float*>(t.data) = 0.6f;
  const int64_t n = 3;
  net.reserve(n);
  std::vector<float> x = testing::to_float(testing::random_vector(n * 49, 7));
  const auto r = testing::random_vector(n * 3, 8);
  loss_of(net, x, n, r);
  net.zero_grad();
  std::vector<float> dinput(n * 49);
  net.backward(testing::to_float(r).data(), n, dinput.data());

  std::vector<double> params(net.parameters().begin(), net.parameters().end());
  const std::vector<double> analytic(net.gradients().begin(), net.gradients().end());
  testing::expect_gradient("parameters", params, analytic, [&] {
    for (size_t i = 0; i < params.size(); ++i) net.parameters()[i] = static_cast<float>(params[i]);
    return loss_of(net, x, n, r);
  }, 1e-2, 5e-3);
  for (size_t i = 0; i < params.size(); ++i) net.parameters()[i] = static_cast<float>(params[i]);

  std::vector<double> xd(x.begin(), x.end());
  const std::vector<double> dx(dinput.begin(), dinput.end());
  testing::expect_gradient("input", xd, dx, [&] {
    for (size_t i = 0; i < xd.size(); ++i) x[i] = static_cast<float>(xd[i]);
    return loss_of(net, x, n, r);
  }, 1e-2, 5e-3);
}

TEST(Residual, FirstLayerBlockStillTrainsItsShortcut) {
  // No dx wanted (the network's first layer): the shortcut's parameters get their gradients.
  Network net = build_network(parse_spec("Residual\n  Conv2d out_channels=2 kernel_size=1\nshortcut\n  Conv2d out_channels=2 kernel_size=1\nend\n", "net.spec"), {1, 2, 2});
  net.initialize(3);
  net.reserve(2);
  const auto x = testing::to_float(testing::random_vector(8, 4));
  net.forward(x.data(), 2, {.mode = Mode::Train});
  net.zero_grad();
  const std::vector<float> dy(16, 1.0f);
  net.backward(dy.data(), 2, nullptr);
  for (const TensorView& g : net.named_gradients()) {
    double sum = 0;
    for (int64_t i = 0; i < numel(g.shape); ++i) sum += std::abs(static_cast<const float*>(g.data)[i]);
    EXPECT_GT(sum, 0) << g.name;
  }
}

TEST(Residual, ShortcutErrorsPointAtLineAndColumn) {
  const Shape image = {2, 8, 8};
  EXPECT_EQ(build_error("Residual\n  Conv2d out_channels=4 kernel_size=3 stride=2 padding=1\nend\n", image),
            "net.spec:1:1: Residual: output: the block turns 2x8x8 into 4x4x4; x + f(x) needs f to keep the "
            "shape (or a shortcut: shortcut=pad, or shortcut layers)");
  EXPECT_EQ(build_error("Residual shortcut=pad\n  Conv2d out_channels=1 kernel_size=3 stride=2 padding=1\nend\n", image),
            "net.spec:1:1: Residual: shortcut: pad takes x[:, :, ::s, ::s] with zero channels added, which cannot turn "
            "2x8x8 into the body's 1x4x4");
  EXPECT_EQ(build_error("Residual shortcut=pad\n  Conv2d out_channels=4 kernel_size=3\nend\n", image),
            "net.spec:1:1: Residual: shortcut: pad takes x[:, :, ::s, ::s] with zero channels added, which cannot turn "
            "2x8x8 into the body's 4x6x6");
  EXPECT_EQ(build_error("Residual shortcut=zeros\n  ReLU\nend\n", image),
            "net.spec:1:10: Residual: shortcut: 'zeros' is not identity or pad (shortcut layers go after a line 'shortcut')");
  EXPECT_EQ(build_error("Residual\n  Conv2d out_channels=4 kernel_size=1\nshortcut\n  Conv2d out_channels=3 kernel_size=1\nend\n", image),
            "net.spec:1:1: Residual: shortcut: turns 2x8x8 into 3x8x8, but the body's output is 4x8x8");
  EXPECT_EQ(build_error("Residual shortcut=pad\n  ReLU\nshortcut\n  ReLU\nend\n", image),
            "net.spec:3:1: shortcut layers and shortcut=pad (line 1) exclude each other");
  EXPECT_EQ(build_error("ReLU\nshortcut\n", image), "net.spec:2:1: 'shortcut' outside a Residual block");
  EXPECT_EQ(build_error("Residual\n  ReLU\nshortcut\n  ReLU\nshortcut\n  ReLU\nend\n", image),
            "net.spec:5:1: a Residual block has one 'shortcut' line");
  EXPECT_EQ(build_error("Residual\nshortcut\n  ReLU\nend\n", image), "net.spec:1:1: Residual block has no layers before 'shortcut'");
  EXPECT_EQ(build_error("Residual\n  ReLU\nshortcut\nend\n", image), "net.spec:3:1: 'shortcut' has no layers before 'end'");
  EXPECT_EQ(build_error("Residual\n  ReLU\ns: shortcut\n  ReLU\nend\n", image),
            "net.spec:3:1: 'shortcut' starts a block's shortcut layers and takes no name");
  EXPECT_EQ(build_error("Residual\n  a: ReLU\nshortcut\n  a: ReLU\nend\n", image),
            "net.spec:3:1: layer name 'a' is used in the body and the shortcut");
}

TEST(ScalarAndPoolLayers, SettingsAreChecked) {
  const Shape image = {2, 8, 8};
  EXPECT_EQ(build_error("Scale init=0.5\n", image), "net.spec:1:7: Scale: init: must be 0 (SkipInit) or 1 (Fixup)");
  EXPECT_EQ(build_error("AdaptiveAvgPool2d output_size=2\n", image),
            "net.spec:1:19: AdaptiveAvgPool2d: output_size: only 1 (global average pooling) is supported");
  EXPECT_EQ(build_error("AdaptiveAvgPool2d\n", image), "net.spec:1:1: AdaptiveAvgPool2d: output_size: required");
  EXPECT_EQ(build_error("AvgPool2d kernel_size=9\n", image),
            "net.spec:1:1: AvgPool2d: kernel_size: window larger than the input 2x8x8");
  EXPECT_EQ(build_error("AvgPool2d kernel_size=2 padding=2\n", image),
            "net.spec:1:1: AvgPool2d: padding: must be between 0 and half the kernel size");
  EXPECT_EQ(build_error("AvgPool2d kernel_size=2\n", {8}), "net.spec:1:1: AvgPool2d: input: expects (C, H, W) per sample, got 8");
  EXPECT_EQ(build_error("Conv2d out_channels=2 kernel_size=1 init=he\n", image),
            "net.spec:1:37: Conv2d: init: 'he' is not default, zeros or kaiming_normal");
  EXPECT_EQ(build_error("Linear out_features=2 init_gain=0.5\n"), "net.spec:1:23: Linear: init_gain: needs init=kaiming_normal");
  EXPECT_EQ(build_error("Linear out_features=2 init=kaiming_normal init_gain=0\n"),
            "net.spec:1:43: Linear: init_gain: must be in (0, 100]");
}

TEST(WeightInit, ZerosAndKaimingNormalStartWhereFixupWants) {
  Network net = build_network(
      parse_spec("a: Conv2d out_channels=64 kernel_size=3 init=kaiming_normal init_gain=0.5\nb: Conv2d out_channels=4 kernel_size=1 init=zeros\n"
                 "Flatten\nc: Linear out_features=3 init=zeros\n", "net.spec"),
      {16, 5, 5});
  net.initialize(11);
  for (const TensorView& t : net.named_parameters()) {
    const float* v = static_cast<const float*>(t.data);
    const int64_t count = numel(t.shape);
    double sum = 0, squares = 0;
    for (int64_t i = 0; i < count; ++i) {
      sum += v[i];
      squares += static_cast<double>(v[i]) * v[i];
    }
    if (t.name == "a.weight") {
      // 9216 draws of N(0, 0.25 * 2 / 144): the standard deviation within 3 % (10 standard errors: 7 %)
      const double std = std::sqrt(squares / static_cast<double>(count)), expected = 0.5 * std::sqrt(2.0 / 144);
      EXPECT_NEAR(std, expected, 0.03 * expected);
      EXPECT_NEAR(sum / static_cast<double>(count), 0, 4 * expected / std::sqrt(static_cast<double>(count)));
    } else {
      EXPECT_EQ(squares, 0) << t.name << " starts at zero (bias too)";
    }
  }
  EXPECT_NE(spec_text(net).find("init=kaiming_normal init_gain=0.5"), std::string::npos);
}

}  // namespace
}  // namespace bnlab
