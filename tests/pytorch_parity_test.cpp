// Numerical parity with PyTorch 1.13: every layer, batch normalization in all its modes, the
// whole seed network, and one optimizer step, against fixtures that tools/golden/make_fixtures.py
// wrote with PyTorch (committed, so this test needs no Python).
//
// Tolerance: |bnlab - torch| <= atol + rtol * (|torch| + max|torch over the tensor|) with
// rtol = 1e-5 and atol = 1e-6 for single layers: float32 carries 6e-8 relative precision, and the
// two sides sum in different orders (GEMM blocking, vector lanes), which costs a few ulps per
// reduction of a few hundred terms. The second term covers elements that come out of a
// cancellation (a small dx from terms of the tensor's full size, as in the large-mean case) and
// so carry the error of the large terms. The whole network compounds eight layers, and BN divides
// by batch standard deviations, so it gets rtol = 1e-4, atol = 1e-5. Each check prints its
// largest deviation.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <string>

#include "bnlab/checkpoint.h"
#include "bnlab/error.h"
#include "bnlab/loss.h"
#include "bnlab/network.h"
#include "bnlab/optim.h"
#include "bnlab/spec.h"
#include "bnlab/train_step.h"

namespace bnlab {
namespace {

const std::string kFixtures = BNLAB_FIXTURES;

struct Tolerance {
  double rtol = 1e-5, atol = 1e-6;
};

Shape shape_of(const SafetensorsFile& f, const std::string& name) {
  auto it = f.entries.find(name);
  if (it == f.entries.end()) throw Error(f.path + ": fixture tensor '" + name + "' missing");
  return it->second.shape;
}

// Compares n values with a fixture tensor; reports the worst deviation.
void expect_close(const SafetensorsFile& f, const std::string& name, const float* actual, Tolerance tol = {}) {
  const Shape shape = shape_of(f, name);
  const float* expected = f.f32(name, shape);
  double scale = 0;
  for (int64_t i = 0; i < numel(shape); ++i) scale = std::max(scale, std::abs(static_cast<double>(expected[i])));
  double worst = 0, worst_excess = -1;
  int64_t worst_at = 0;
  for (int64_t i = 0; i < numel(shape); ++i) {
    const double d = std::abs(static_cast<double>(actual[i]) - expected[i]);
    const double excess = d - (tol.atol + tol.rtol * (std::abs(expected[i]) + scale));
    worst = std::max(worst, d);
    if (excess > worst_excess) {
      worst_excess = excess;
      worst_at = i;
    }
  }
  EXPECT_LE(worst_excess, 0.0) << name << ": element " << worst_at << " is " << actual[worst_at]
                               << ", PyTorch has " << expected[worst_at];
  ::testing::Test::RecordProperty(name + "_max_abs_diff", std::to_string(worst));
  std::printf("  %-28s max |diff| %.3g\n", name.c_str(), worst);
}

// A network of the single layer `line`, with its input gradient.
struct OneLayer {
  Network net;
  OneLayer(const std::string& line, const Shape& input) : net(build_network(parse_spec(line, "fixture"), input)) {
    net.reserve(64);
  }
  const float* forward(const float* x, int64_t n, Mode mode) { return net.forward(x, n, {.mode = mode}); }
  std::vector<float> backward(const float* dy, int64_t n) {
    std::vector<float> dx(n * numel(net.input_shape()));
    net.zero_grad();
    net.backward(dy, n, dx.data());
    return dx;
  }
  float* tensor(const std::string& name) {
    for (const TensorView& t : net.state_dict())
      if (t.name == name) return static_cast<float*>(t.data);
    throw Error("no tensor " + name);
  }
  float* grad(const std::string& name) {
    for (const TensorView& t : net.named_gradients())
      if (t.name == name) return static_cast<float*>(t.data);
    throw Error("no gradient " + name);
  }
};

Shape per_sample(const Shape& s) { return Shape(s.begin() + 1, s.end()); }

// A fixture's step `s` through a one-layer network named `name`: y from x_s, dx from dy_s, and
// with an affine the parameter gradients dweight_s, dbias_s.
void expect_step(const SafetensorsFile& f, OneLayer& layer, const std::string& name, const std::string& s, Mode mode,
                 bool affine) {
  const Shape x_shape = shape_of(f, "x_" + s);
  const int64_t n = x_shape[0];
  expect_close(f, "y_" + s, layer.forward(f.f32("x_" + s, x_shape), n, mode));
  const std::vector<float> dx = layer.backward(f.f32("dy_" + s, x_shape), n);
  expect_close(f, "dx_" + s, dx.data());
  if (affine) {
    expect_close(f, "dweight_" + s, layer.grad(name + ".weight"));
    expect_close(f, "dbias_" + s, layer.grad(name + ".bias"));
  }
}

// ---------------------------------------------------------------------------- batch norm

class BatchNormParity : public ::testing::TestWithParam<std::string> {};

TEST_P(BatchNormParity, TrainStepsRunningStatisticsAndEval) {
  const SafetensorsFile f = read_safetensors(kFixtures + "/bn_" + GetParam() + ".safetensors");
  const auto& m = f.metadata;
  const bool affine = m.at("affine") == "true", track = m.at("track_running_stats") == "true";
  const std::string line = std::string("bn: BatchNorm") + m.at("kind") + " eps=" + m.at("eps") +
                           " momentum=" + m.at("momentum") + " affine=" + m.at("affine") +
                           " track_running_stats=" + m.at("track_running_stats");
  const Shape x_shape = shape_of(f, "x_0");
  OneLayer bn(line, per_sample(x_shape));
  const int64_t n = x_shape[0], C = x_shape[1];
  if (affine) {
    std::copy_n(f.f32("weight", {C}), C, bn.tensor("bn.weight"));
    std::copy_n(f.f32("bias", {C}), C, bn.tensor("bn.bias"));
  }
  for (int k = 0; k < 3; ++k) {
    const std::string s = std::to_string(k);
    expect_close(f, "y_" + s, bn.forward(f.f32("x_" + s, x_shape), n, Mode::Train));
    const std::vector<float> dx = bn.backward(f.f32("dy_" + s, x_shape), n);
    expect_close(f, "dx_" + s, dx.data());
    if (affine) {
      expect_close(f, "dweight_" + s, bn.grad("bn.weight"));
      expect_close(f, "dbias_" + s, bn.grad("bn.bias"));
    }
    if (track) {
      expect_close(f, "running_mean_" + s, bn.tensor("bn.running_mean"));
      expect_close(f, "running_var_" + s, bn.tensor("bn.running_var"));
      const int64_t* tracked = nullptr;
      for (const TensorView& t : bn.net.state_dict())
        if (t.name == "bn.num_batches_tracked") tracked = static_cast<const int64_t*>(t.data);
      EXPECT_EQ(*tracked, f.i64("num_batches_tracked_" + s, {})[0]);
    }
  }
  expect_close(f, "y_eval", bn.forward(f.f32("x_eval", x_shape), n, Mode::Eval));
  const std::vector<float> dx = bn.backward(f.f32("dy_eval", x_shape), n);
  expect_close(f, "dx_eval", dx.data());
  if (affine) {
    expect_close(f, "dweight_eval", bn.grad("bn.weight"));
    expect_close(f, "dbias_eval", bn.grad("bn.bias"));
  }
}

INSTANTIATE_TEST_SUITE_P(Variants, BatchNormParity,
                         ::testing::Values("bn2d_default", "bn1d_nc", "bn1d_ncl", "bn2d_noaffine", "bn2d_notrack",
                                           "bn2d_momentum_none", "bn2d_eps_momentum", "bn2d_large_mean"));

// ---------------------------------------------------------------------------- per-sample norms

// GroupNorm, LayerNorm, InstanceNorm1d/2d (tools/golden/golden_norms.py): two training steps
// (with InstanceNorm's running statistics when tracked), then eval.
class NormParity : public ::testing::TestWithParam<std::string> {};

TEST_P(NormParity, TrainStepsRunningStatisticsAndEval) {
  const SafetensorsFile f = read_safetensors(kFixtures + "/norm_" + GetParam() + ".safetensors");
  const bool affine = f.metadata.at("affine") == "true", track = f.metadata.at("track_running_stats") == "true";
  const Shape x_shape = shape_of(f, "x_0");
  OneLayer norm(f.metadata.at("spec"), per_sample(x_shape));
  if (affine) {
    const Shape p = shape_of(f, "weight");
    std::copy_n(f.f32("weight", p), numel(p), norm.tensor("n.weight"));
    std::copy_n(f.f32("bias", p), numel(p), norm.tensor("n.bias"));
  }
  auto step = [&](const std::string& s, Mode mode) { expect_step(f, norm, "n", s, mode, affine); };
  for (int k = 0; k < 2; ++k) {
    const std::string s = std::to_string(k);
    step(s, Mode::Train);
    if (!track) continue;
    expect_close(f, "running_mean_" + s, norm.tensor("n.running_mean"));
    expect_close(f, "running_var_" + s, norm.tensor("n.running_var"));
    const int64_t* tracked = nullptr;
    for (const TensorView& t : norm.net.state_dict())
      if (t.name == "n.num_batches_tracked") tracked = static_cast<const int64_t*>(t.data);
    ASSERT_NE(tracked, nullptr);
    EXPECT_EQ(*tracked, f.i64("num_batches_tracked_" + s, {})[0]);
  }
  step("eval", Mode::Eval);
}

INSTANTIATE_TEST_SUITE_P(Variants, NormParity,
                         ::testing::Values("gn_default", "gn_groups_of_one", "gn_one_group", "gn_spatial1", "gn_eps",
                                           "gn_large_mean", "ln_chw", "ln_features", "ln_noaffine", "ln_large_mean",
                                           "in2d_default", "in2d_affine_track", "in1d_track", "in1d_affine",
                                           "in2d_large_mean"));

// ---------------------------------------------------------------------------- BatchNorm variants

// Ghost and frozen BN against PyTorch's BatchNorm used as they define it, Batch Renormalization
// against the paper's Algorithm 1 in float64 (tools/golden/golden_bn_variants.py): training steps
// from the fixture's initial buffers, then eval.
class BatchNormVariantParity : public ::testing::TestWithParam<std::string> {};

TEST_P(BatchNormVariantParity, TrainStepsRunningStatisticsAndEval) {
  const SafetensorsFile f = read_safetensors(kFixtures + "/bnv_" + GetParam() + ".safetensors");
  const bool affine = f.metadata.at("affine") == "true";
  const int steps = std::stoi(f.metadata.at("steps"));
  const Shape x_shape = shape_of(f, "x_0");
  OneLayer bn(f.metadata.at("spec"), per_sample(x_shape));
  const int64_t C = x_shape[1];
  if (affine) {
    std::copy_n(f.f32("weight", {C}), C, bn.tensor("bn.weight"));
    std::copy_n(f.f32("bias", {C}), C, bn.tensor("bn.bias"));
  }
  std::copy_n(f.f32("running_mean_init", {C}), C, bn.tensor("bn.running_mean"));
  std::copy_n(f.f32("running_var_init", {C}), C, bn.tensor("bn.running_var"));
  int64_t* tracked = nullptr;
  for (const TensorView& t : bn.net.state_dict())
    if (t.name == "bn.num_batches_tracked") tracked = static_cast<int64_t*>(t.data);
  ASSERT_NE(tracked, nullptr);
  *tracked = f.i64("num_batches_tracked_init", {})[0];
  auto step = [&](const std::string& s, Mode mode) { expect_step(f, bn, "bn", s, mode, affine); };
  for (int k = 0; k < steps; ++k) {
    const std::string s = std::to_string(k);
    step(s, Mode::Train);
    expect_close(f, "running_mean_" + s, bn.tensor("bn.running_mean"));
    expect_close(f, "running_var_" + s, bn.tensor("bn.running_var"));
    EXPECT_EQ(*tracked, f.i64("num_batches_tracked_" + s, {})[0]) << "num_batches_tracked after step " << s;
  }
  step("eval", Mode::Eval);
}

INSTANTIATE_TEST_SUITE_P(Variants, BatchNormVariantParity,
                         ::testing::Values("ghost2d", "ghost1d", "frozen2d", "renorm_clipped", "renorm_free",
                                           "renorm1d"));

// ---------------------------------------------------------------------------- other layers

void check_layer(const std::string& file, const std::string& line, bool has_params) {
  const SafetensorsFile f = read_safetensors(kFixtures + "/" + file);
  const Shape x_shape = shape_of(f, "x");
  OneLayer layer(line, per_sample(x_shape));
  if (has_params) {
    std::copy_n(f.f32("weight", shape_of(f, "weight")), numel(shape_of(f, "weight")), layer.tensor("l.weight"));
    std::copy_n(f.f32("bias", shape_of(f, "bias")), numel(shape_of(f, "bias")), layer.tensor("l.bias"));
  }
  const int64_t n = x_shape[0];
  expect_close(f, "y", layer.forward(f.f32("x", x_shape), n, Mode::Train));
  const std::vector<float> dx = layer.backward(f.f32("dy", shape_of(f, "dy")), n);
  expect_close(f, "dx", dx.data());
  if (has_params) {
    expect_close(f, "dweight", layer.grad("l.weight"));
    expect_close(f, "dbias", layer.grad("l.bias"));
  }
}

TEST(LayerParity, Conv2dStridePadding) {
  check_layer("conv2d.safetensors", "l: Conv2d out_channels=4 kernel_size=3 stride=2 padding=1", true);
}
TEST(LayerParity, Conv2dNoPadding) { check_layer("conv2d_nopad.safetensors", "l: Conv2d out_channels=3 kernel_size=3", true); }
TEST(LayerParity, Linear) { check_layer("linear.safetensors", "l: Linear out_features=5", true); }
TEST(LayerParity, MaxPool2d) { check_layer("maxpool2d.safetensors", "l: MaxPool2d kernel_size=2", false); }
TEST(LayerParity, ReLU) { check_layer("relu.safetensors", "l: ReLU", false); }

TEST(LayerParity, LogSoftmaxNll) {
  const SafetensorsFile f = read_safetensors(kFixtures + "/log_softmax_nll.safetensors");
  OneLayer layer("l: LogSoftmax", {10});
  const float* logp = layer.forward(f.f32("x", {6, 10}), 6, Mode::Train);
  expect_close(f, "logp", logp);
  std::vector<uint8_t> labels(6);
  for (int i = 0; i < 6; ++i) labels[i] = static_cast<uint8_t>(f.f32("labels", {6})[i]);
  std::vector<float> dlogp(60);
  const float loss = static_cast<float>(nll_loss(dlogp.data(), logp, labels.data(), 6, 10));
  expect_close(f, "loss", &loss);
  const std::vector<float> dx = layer.backward(dlogp.data(), 6);
  expect_close(f, "dx", dx.data());
}

// ---------------------------------------------------------------------------- the seed network

class SeedNetParity : public ::testing::Test {
 protected:
  static constexpr int64_t kBatch = 8;
  static constexpr Tolerance kNet{1e-4, 1e-5};

  explicit SeedNetParity(const std::string& file = "seed_net.safetensors") : f_(read_safetensors(kFixtures + "/" + file)) {}

  // The tutorial's Net with dropout off, its weights set by the fixture's closed formula.
  Network make_net() {
    std::string text = preset_text("seed");
    text.replace(text.find("p=0.25"), 6, "p=0");
    Network net = build_network(parse_spec(text, "seed-no-dropout"), {1, 28, 28});
    net.reserve(kBatch);
    int t = 0;
    for (const TensorView& v : net.named_parameters()) {
      float* data = static_cast<float*>(v.data);
      const bool bn = v.name.find("_bn.") != std::string::npos;
      const bool bn_weight = bn && v.name.find(".weight") != std::string::npos;
      const double amplitude = v.name == "fc1.weight" ? 0.01 : 0.05;
      for (int64_t i = 0; i < numel(v.shape); ++i) {
        const double s = std::sin((0.37 * static_cast<double>(i) + 1.3 * t) + 0.1);
        data[i] = static_cast<float>(bn_weight ? 1.0 + 0.1 * s : bn ? 0.1 * s : amplitude * s);
      }
      ++t;
    }
    return net;
  }

  // Compares a parameter-shaped tensor, fc1.weight through its stored row sums and first rows.
  void expect_params(const std::string& prefix, const std::vector<TensorView>& views, Tolerance tol) {
    for (const TensorView& v : views) {
      const float* data = static_cast<const float*>(v.data);
      if (v.name != "fc1.weight") {
        expect_close(f_, prefix + v.name, data, tol);
        continue;
      }
      std::vector<float> rowsum(128);
      for (int r = 0; r < 128; ++r) {
        double s = 0;
        for (int c = 0; c < 9216; ++c) s += data[r * 9216 + c];
        rowsum[r] = static_cast<float>(s);
      }
      expect_close(f_, prefix + "fc1.weight.rowsum", rowsum.data(), {tol.rtol, tol.atol * 100});
      expect_close(f_, prefix + "fc1.weight.slice", data, tol);
    }
  }

  void forward_backward(Network& net) {
    labels_.resize(kBatch);
    for (int i = 0; i < kBatch; ++i) labels_[i] = static_cast<uint8_t>(f_.f32("labels", {kBatch})[i]);
    const float* logp = net.forward(f_.f32("x", {kBatch, 1, 28, 28}), kBatch, {.mode = Mode::Train});
    logp_.assign(logp, logp + kBatch * 10);
    std::vector<float> dlogp(kBatch * 10);
    loss_ = static_cast<float>(nll_loss(dlogp.data(), logp, labels_.data(), kBatch, 10));
    net.zero_grad();
    net.backward(dlogp.data(), kBatch);
  }

  SafetensorsFile f_;
  std::vector<uint8_t> labels_;
  std::vector<float> logp_;
  float loss_ = 0;
};

TEST_F(SeedNetParity, InitialWeightsMatchTheFixturesFormula) {
  Network net = make_net();
  expect_params("init.", net.named_parameters(), {0, 0});  // bit-exact
}

TEST_F(SeedNetParity, LossGradientsAndRunningStatistics) {
  Network net = make_net();
  forward_backward(net);
  expect_close(f_, "logp", logp_.data(), kNet);
  expect_close(f_, "loss", &loss_, kNet);
  expect_params("grad.", net.named_gradients(), kNet);
  for (const TensorView& v : net.state_dict()) {
    if (v.dtype == DType::I64) {
      EXPECT_EQ(*static_cast<const int64_t*>(v.data), f_.i64("after." + v.name, {})[0]) << v.name;
    } else if (v.name.find("running_") != std::string::npos) {
      expect_close(f_, "after." + v.name, static_cast<const float*>(v.data), kNet);
    }
  }
  const float* eval = net.forward(f_.f32("x", {kBatch, 1, 28, 28}), kBatch, {.mode = Mode::Eval});
  expect_close(f_, "eval_logp", eval, kNet);
}

TEST_F(SeedNetParity, OneAdadeltaStep) {
  Network net = make_net();
  forward_backward(net);
  auto opt = make_optimizer({.kind = OptimizerKind::Adadelta, .lr = 1.0}, static_cast<int64_t>(net.parameters().size()));
  opt->step(net.parameters(), net.gradients(), 1.0);
  expect_params("adadelta.", net.named_parameters(), kNet);
}

TEST_F(SeedNetParity, OneSgdMomentumStep) {
  Network net = make_net();
  forward_backward(net);
  auto opt = make_optimizer({.kind = OptimizerKind::SGD, .lr = 0.1, .weight_decay = 1e-4, .momentum = 0.9},
                            static_cast<int64_t>(net.parameters().size()));
  opt->step(net.parameters(), net.gradients(), 0.1);
  expect_params("sgd.", net.named_parameters(), kNet);
}

// Gradient accumulation through the one training step against PyTorch's usual recipe
// (tools/golden/golden_accumulate.py): batches of 16 as 4 micro-batches, the second batch the
// epoch's smaller last one (micro-batches of 4, 4 and 3), two Adadelta steps. BN's statistics per
// micro-batch, so num_batches_tracked ends at 7.
class AccumulateParity : public SeedNetParity {
 protected:
  AccumulateParity() : SeedNetParity("accumulate_seed_net.safetensors") {}
};

TEST_F(AccumulateParity, FourMicroBatchesEqualPyTorchsRecipe) {
  constexpr int64_t kCount = 27, kBatch = 16;
  DataSource data;
  data.mean = 0.1307f;
  data.std = 0.3081f;
  data.train.count = kCount;
  data.train.height = data.train.width = 28;
  const float* images = f_.f32("images", {kCount, 28, 28});
  const float* labels = f_.f32("labels", {kCount});
  for (int64_t i = 0; i < kCount * 784; ++i) data.train.images.push_back(static_cast<uint8_t>(images[i]));
  for (int64_t i = 0; i < kCount; ++i) data.train.labels.push_back(static_cast<uint8_t>(labels[i]));
  Network net = make_net();
  auto opt = make_optimizer({.kind = OptimizerKind::Adadelta, .lr = 1.0}, static_cast<int64_t>(net.parameters().size()));
  TrainStep step(net, data, *opt, kBatch, {.accumulate = 4});
  std::vector<int64_t> order(kCount);
  std::iota(order.begin(), order.end(), 0);
  float losses[2];
  for (int64_t s = 0; s < 2; ++s) {
    const StepResult r = step.run(order.data() + s * kBatch, std::min(kBatch, kCount - s * kBatch), s + 1, 1.0);
    ASSERT_EQ(r.fault, StepResult::Fault::None);
    losses[s] = static_cast<float>(r.loss);
  }
  expect_close(f_, "loss", losses, kNet);
  expect_params("after.", net.named_parameters(), kNet);
  for (const TensorView& v : net.state_dict()) {
    if (v.dtype == DType::I64) {
      EXPECT_EQ(*static_cast<const int64_t*>(v.data), f_.i64("after." + v.name, {})[0]) << v.name;
      EXPECT_EQ(*static_cast<const int64_t*>(v.data), 7) << v.name;
    } else if (v.name.find("running_") != std::string::npos) {
      expect_close(f_, "after." + v.name, static_cast<const float*>(v.data), kNet);
    }
  }
}

// ---------------------------------------------------------------------------- residual networks

// The residual pieces of bnlab's ResNets (tools/golden/golden_resnet.py): identity, shortcut-layer
// and zero-padding blocks, Scale and Bias, AvgPool2d and AdaptiveAvgPool2d, one training step and
// one evaluation, the network built from the spec the fixture carries.
TEST(ResNetParity, BlocksShortcutsScalarsAndPoolsAgreeWithPyTorch) {
  const SafetensorsFile f = read_safetensors(kFixtures + "/resnet_blocks.safetensors");
  constexpr Tolerance kNet{1e-4, 1e-5};
  const Shape x_shape = shape_of(f, "x");
  const int64_t n = x_shape[0];
  Network net = build_network(parse_spec(f.metadata.at("spec"), "resnet_blocks.spec"), per_sample(x_shape));
  net.reserve(n);
  int copied = 0;
  for (const TensorView& v : net.named_parameters()) {
    std::copy_n(f.f32("init." + v.name, v.shape), numel(v.shape), static_cast<float*>(v.data));
    ++copied;
  }
  EXPECT_EQ(copied, 27);  // every PyTorch parameter has its bnlab namesake
  const float* x = f.f32("x", x_shape);
  expect_close(f, "y_train", net.forward(x, n, {.mode = Mode::Train}), kNet);
  net.zero_grad();
  std::vector<float> dx(static_cast<size_t>(numel(x_shape)));
  net.backward(f.f32("dy", shape_of(f, "dy")), n, dx.data());
  expect_close(f, "dx", dx.data(), kNet);
  for (const TensorView& g : net.named_gradients()) expect_close(f, "grad." + g.name, static_cast<const float*>(g.data), kNet);
  for (const TensorView& v : net.state_dict())
    if (v.name.find("running_") != std::string::npos) expect_close(f, "after." + v.name, static_cast<const float*>(v.data), kNet);
  expect_close(f, "y_eval", net.forward(x, n, {.mode = Mode::Eval}), kNet);
}

}  // namespace
}  // namespace bnlab
