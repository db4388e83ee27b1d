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
            "net.spec:1:4: Residual: output: the block turns 8 into 4; x + f(x) needs f to keep the shape");
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

}  // namespace
}  // namespace bnlab
