// BatchNorm's variants (ghost batches, frozen statistics, Batch Renormalization) where the PyTorch
// fixtures (BatchNormVariantParity) do not reach: renorm with r_max = 1, d_max = 0 is BN to the
// bit, the fused training executor gives the unfused bits, a frozen affine is never trained,
// finite differences through the layer, and the spec's errors.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "bnlab/comm.h"
#include "bnlab/error.h"
#include "bnlab/fold.h"
#include "bnlab/network.h"
#include "bnlab/optim.h"
#include "bnlab/spec.h"
#include "gradcheck.h"

namespace bnlab {
namespace {

// conv -> BN (the line under test) -> ReLU -> flatten -> linear -> log-softmax.
std::string net_text(const std::string& bn_keys) {
  return "conv: Conv2d out_channels=4 kernel_size=3\n"
         "bn:   BatchNorm2d " + bn_keys + "\n"
         "      ReLU\n"
         "      Flatten\n"
         "fc:   Linear out_features=3\n"
         "      LogSoftmax\n";
}

Network make_net(const std::string& bn_keys, Fusion fusion = Fusion::Full) {
  Network net = build_network(parse_spec(net_text(bn_keys), "test"), {2, 6, 6});
  net.initialize(7);
  net.reserve(12, {.fusion = fusion});
  return net;
}

// Everything a training step leaves: the outputs, the input gradient, parameter gradients,
// running statistics and counters, as bytes.
std::vector<uint8_t> run_steps(Network& net, int steps, int64_t n, double shift = 0) {
  std::vector<uint8_t> bytes;
  auto append = [&](const void* p, size_t size) {
    const auto* b = static_cast<const uint8_t*>(p);
    bytes.insert(bytes.end(), b, b + size);
  };
  for (int k = 0; k < steps; ++k) {
    const auto x = testing::to_float(testing::random_vector(n * 72, 100 + k, 2.0, shift));
    const auto dy = testing::to_float(testing::random_vector(n * 3, 200 + k));
    const float* y = net.forward(x.data(), n, {.mode = Mode::Train, .random_key = 1});
    append(y, n * 3 * sizeof(float));
    std::vector<float> dx(x.size());
    net.zero_grad();
    net.backward(dy.data(), n, dx.data());
    append(dx.data(), dx.size() * sizeof(float));
    append(net.gradients().data(), net.gradients().size() * sizeof(float));
    append(net.buffers().data(), net.buffers().size() * sizeof(float));
    append(net.counters().data(), net.counters().size() * sizeof(int64_t));
  }
  return bytes;
}

TEST(BatchRenorm, UnitLimitsGiveBatchNormToTheBit) {
  Network bn = make_net(""), renorm = make_net("renorm=true r_max=1 d_max=0");
  const auto expected = run_steps(bn, 3, 12, 1.5), actual = run_steps(renorm, 3, 12, 1.5);
  ASSERT_EQ(expected.size(), actual.size());
  EXPECT_EQ(std::memcmp(expected.data(), actual.data(), expected.size()), 0);
  // and with limits that clip, it is not BN (the comparison above can fail)
  Network clipped = make_net("renorm=true r_max=1.1 d_max=0.1");
  run_steps(clipped, 1, 12, 0);  // running statistics move away from 0 and 1
  Network plain = make_net("");
  run_steps(plain, 1, 12, 0);
  EXPECT_NE(run_steps(plain, 1, 12, 3.0), run_steps(clipped, 1, 12, 3.0));
}

TEST(BatchRenorm, WarmupIsBatchNormThenTheLimitsApply) {
  Network bn = make_net(""), renorm = make_net("renorm=true r_max=1.2 d_max=0.2 renorm_warmup=2 renorm_ramp=3");
  EXPECT_EQ(run_steps(bn, 2, 12, 3.0), run_steps(renorm, 2, 12, 3.0));  // steps 0 and 1: r_max 1, d_max 0
  EXPECT_NE(run_steps(bn, 2, 12, 3.0), run_steps(renorm, 2, 12, 3.0));  // the ramp: step 3 has 1.067, 0.067
}

// The training executor fuses BN with the ReLU after it; each variant must give the unfused bits.
class VariantFusion : public ::testing::TestWithParam<std::string> {};

TEST_P(VariantFusion, FusedTrainingGivesTheUnfusedBits) {
  Network fused = make_net(GetParam(), Fusion::Full), plain = make_net(GetParam(), Fusion::None);
  EXPECT_EQ(run_steps(fused, 3, 11, 2.0), run_steps(plain, 3, 11, 2.0));
}

INSTANTIATE_TEST_SUITE_P(Variants, VariantFusion,
                         ::testing::Values("virtual_batch=4", "frozen=stats", "frozen=all",
                                           "renorm=true r_max=1.5 d_max=0.5"));

TEST(GhostBatchNorm, EachGroupIsItsOwnBatch) {
  // A batch of two ghost groups gives, sample for sample, what the two halves give as batches.
  Network ghost = make_net("virtual_batch=6"), halves = make_net("");
  const auto x = testing::to_float(testing::random_vector(12 * 72, 5, 1.0, 0.5));
  const float* out = ghost.forward(x.data(), 12, {.mode = Mode::Train});
  const std::vector<float> y(out, out + 36);
  std::vector<float> expected(36);
  const float* first = halves.forward(x.data(), 6, {.mode = Mode::Train});
  std::copy_n(first, 18, expected.begin());
  const float* second = halves.forward(x.data() + 6 * 72, 6, {.mode = Mode::Train});
  std::copy_n(second, 18, expected.begin() + 18);
  EXPECT_EQ(y, expected);
}

TEST(GhostBatchNorm, IsRefusedWithSynchronizedStatistics) {
  Network net = make_net("virtual_batch=4");
  Communicator comm;
  try {
    net.set_communicator(&comm);
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("virtual_batch"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("--sync-bn"), std::string::npos) << e.what();
  }
}

TEST(FrozenBatchNorm, StatisticsStayAndAllFreezesTheAffine) {
  Network stats = make_net("frozen=stats"), all = make_net("frozen=all");
  for (Network* net : {&stats, &all}) {
    for (const TensorView& t : net->state_dict()) {
      if (t.name == "bn.running_mean") static_cast<float*>(t.data)[1] = 0.25f;
      if (t.name == "bn.num_batches_tracked") *static_cast<int64_t*>(t.data) = 9;
    }
  }
  auto names = [](std::vector<TensorView> views) {
    std::vector<std::string> n;
    for (const TensorView& t : views) n.push_back(t.name);
    return n;
  };
  EXPECT_EQ(names(stats.state_dict()), names(all.state_dict()));  // PyTorch's names either way
  const std::vector<std::string> trained = names(all.named_parameters());
  EXPECT_EQ(std::count(trained.begin(), trained.end(), "bn.weight"), 0);
  EXPECT_EQ(names(stats.named_parameters()).size(), trained.size() + 2);

  auto optimizer = make_optimizer({.kind = OptimizerKind::SGD, .weight_decay = 0.1}, all.parameters().size());
  const std::vector<float> buffers_before(all.buffers().begin(), all.buffers().end());
  for (int k = 0; k < 2; ++k) {
    run_steps(all, 1, 8);
    optimizer->step(all.parameters(), all.gradients(), 0.5);
  }
  EXPECT_EQ(std::vector<float>(all.buffers().begin(), all.buffers().end()), buffers_before);  // weight, bias, stats
  for (const TensorView& t : all.state_dict()) {
    if (t.name == "bn.num_batches_tracked") {
      EXPECT_EQ(*static_cast<int64_t*>(t.data), 9);
    }
  }
  // frozen=stats trains the affine, but its statistics stay
  const std::vector<float> stats_before(stats.buffers().begin(), stats.buffers().end());
  run_steps(stats, 2, 8);
  EXPECT_EQ(std::vector<float>(stats.buffers().begin(), stats.buffers().end()), stats_before);
}

TEST(FrozenBatchNorm, TrainsAsBatchNormInEvalMode) {
  // A frozen BN in training computes what BN computes in evaluation.
  Network frozen = make_net("frozen=stats", Fusion::None), bn = make_net("", Fusion::None);
  for (Network* net : {&frozen, &bn}) {
    for (const TensorView& t : net->state_dict()) {
      if (t.name == "bn.running_var") static_cast<float*>(t.data)[2] = 3.0f;
    }
  }
  const auto x = testing::to_float(testing::random_vector(5 * 72, 9));
  const float* train_out = frozen.forward(x.data(), 5, {.mode = Mode::Train});
  const std::vector<float> a(train_out, train_out + 15);
  const float* eval_out = bn.forward(x.data(), 5, {.mode = Mode::Eval});
  const std::vector<float> b(eval_out, eval_out + 15);
  EXPECT_EQ(a, b);
}

// Evaluation is BN's for every variant, so each folds into the convolution before it.
class VariantFold : public ::testing::TestWithParam<std::string> {};

TEST_P(VariantFold, FoldsIntoTheConvolutionWithTheSamePredictions) {
  Network net = make_net(GetParam());
  run_steps(net, 2, 12, 1.0);  // running statistics away from 0 and 1
  FoldedNetwork folded = fold_batchnorm(net);
  EXPECT_EQ(folded.folded, 1);
  folded.net.reserve(12);
  const auto x = testing::to_float(testing::random_vector(12 * 72, 77, 2.0, 1.0));
  const float* a = net.forward(x.data(), 12, {.mode = Mode::Eval});
  const std::vector<float> expected(a, a + 36);
  const float* b = folded.net.forward(x.data(), 12, {.mode = Mode::Eval});
  for (int i = 0; i < 36; ++i) EXPECT_NEAR(b[i], expected[i], 1e-5) << i;
}

INSTANTIATE_TEST_SUITE_P(Variants, VariantFold,
                         ::testing::Values("virtual_batch=4", "frozen=stats", "frozen=all",
                                           "renorm=true r_max=1.5 d_max=0.5"));

// Finite differences through the layer in float, for each variant: the input gradient of
// sum(BN(x) * r). Renorm's inputs (mean 3, sd 2 against running statistics 0 and 1) clip r and d,
// so that treating them as constants, as the paper does, is the true gradient here.
class VariantGradient : public ::testing::TestWithParam<std::string> {};

TEST_P(VariantGradient, InputGradientMatchesFiniteDifferences) {
  const std::string line = "bn: BatchNorm1d " + GetParam();
  Network net = build_network(parse_spec(line, "test"), {3, 4});
  net.initialize(1);
  for (const TensorView& t : net.state_dict()) {
    if (t.name == "bn.weight") static_cast<float*>(t.data)[1] = 1.7f;
    if (t.name == "bn.running_var") static_cast<float*>(t.data)[0] = 0.5f;
  }
  net.reserve(6, {.fusion = Fusion::None});
  const int64_t n = 6;
  std::vector<double> xd = testing::random_vector(n * 12, 60, 2.0, 3.0);
  const auto r = testing::random_vector(n * 12, 61);
  // The loss restores the running statistics, so that every evaluation sees the same ones.
  const std::vector<float> buffers(net.buffers().begin(), net.buffers().end());
  const std::vector<int64_t> counters(net.counters().begin(), net.counters().end());
  std::vector<float> x;  // alive for backward: the network keeps its input's address
  auto loss = [&] {
    std::copy(buffers.begin(), buffers.end(), net.buffers().begin());
    std::copy(counters.begin(), counters.end(), net.counters().begin());
    x = testing::to_float(xd);
    const float* y = net.forward(x.data(), n, {.mode = Mode::Train});
    double s = 0;
    for (size_t i = 0; i < r.size(); ++i) s += y[i] * r[i];
    return s;
  };
  loss();
  std::vector<float> dx(xd.size());
  net.zero_grad();
  net.backward(testing::to_float(r).data(), n, dx.data());
  testing::expect_gradient(GetParam(), xd, std::vector<double>(dx.begin(), dx.end()), loss, 1e-2, 3e-3);
}

INSTANTIATE_TEST_SUITE_P(Variants, VariantGradient,
                         ::testing::Values("virtual_batch=4", "frozen=stats", "renorm=true r_max=1.2 d_max=0.3"));

TEST(BatchNormVariantSpec, BadValuesAreErrorsAtTheirKey) {
  const std::pair<const char*, const char*> cases[] = {
      {"bn: BatchNorm2d renorm=true r_max=0.5", "test:1:29: BatchNorm2d: r_max: must be at least 1"},
      {"bn: BatchNorm2d renorm=true d_max=-1", "test:1:29: BatchNorm2d: d_max: must be at least 0"},
      {"bn: BatchNorm2d r_max=2", "test:1:17: BatchNorm2d: r_max: needs renorm=true"},
      {"bn: BatchNorm2d renorm=true renorm_ramp=-3", "test:1:29: BatchNorm2d: renorm_ramp: must be at least 0"},
      {"bn: BatchNorm2d renorm=true track_running_stats=false", "renorm: needs track_running_stats"},
      {"bn: BatchNorm2d renorm=true virtual_batch=4", "renorm: and virtual_batch together are not supported"},
      {"bn: BatchNorm2d virtual_batch=0", "test:1:17: BatchNorm2d: virtual_batch: must be at least 1"},
      {"bn: BatchNorm2d virtual_batch=two", "virtual_batch: 'two' is not an integer"},
      {"bn: BatchNorm2d frozen=yes", "test:1:17: BatchNorm2d: frozen: 'yes' is not none, stats or all"},
      {"bn: BatchNorm2d frozen=all track_running_stats=false", "frozen: needs track_running_stats"},
      {"bn: BatchNorm2d frozen=stats virtual_batch=8", "frozen: uses no batch statistics"},
  };
  for (const auto& [text, message] : cases) {
    try {
      build_network(parse_spec(text, "test"), {2, 4, 4});
      ADD_FAILURE() << text << ": accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << text << "\n  " << e.what();
    }
  }
}

TEST(BatchNormVariantSpec, SettingsRebuildTheLayer) {
  const std::string text = "bn: BatchNorm2d renorm=true r_max=2.5 d_max=1 renorm_warmup=10 renorm_ramp=20\n"
                           "g: BatchNorm2d virtual_batch=8\n"
                           "f: BatchNorm2d frozen=all\n";
  Network net = build_network(parse_spec(text, "test"), {2, 4, 4});
  const std::string written = spec_text(net);
  Network again = build_network(parse_spec(written, "written"), {2, 4, 4});
  EXPECT_EQ(spec_text(again), written);
  EXPECT_NE(written.find("renorm=true r_max=2.5 d_max=1 renorm_warmup=10 renorm_ramp=20"), std::string::npos) << written;
  EXPECT_NE(written.find("virtual_batch=8"), std::string::npos) << written;
  EXPECT_NE(written.find("frozen=all"), std::string::npos) << written;
}

}  // namespace
}  // namespace bnlab
