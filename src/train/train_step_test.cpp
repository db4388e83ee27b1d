// The training step's gradient accumulation (micro-batches summed into one optimizer step) and
// fine-tuning from a checkpoint (TrainOptions::init_from), on small synthetic data sets.
// PyTorch's own recipe is held against a fixture in tests/pytorch_parity_test.cpp.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <string>

#include "bnlab/checkpoint.h"
#include "bnlab/error.h"
#include "bnlab/recalibrate.h"
#include "bnlab/spec.h"
#include "bnlab/train.h"
#include "bnlab/train_step.h"

namespace bnlab {
namespace {

// `count` images of side x side with varied pixels, labels cycling through 0..9; the test set
// is the training set.
DataSource synthetic(int64_t count, int64_t side) {
  DataSource d;
  d.name = "synthetic";
  d.mean = 0.1307f;
  d.std = 0.3081f;
  d.train.count = count;
  d.train.height = d.train.width = side;
  for (int64_t i = 0; i < count * side * side; ++i) d.train.images.push_back(static_cast<uint8_t>((i * 37 + i / 7) % 256));
  for (int64_t i = 0; i < count; ++i) d.train.labels.push_back(static_cast<uint8_t>((i * 7) % 10));
  d.test = d.train;
  return d;
}

Network net_from(const std::string& text, int64_t side, uint64_t seed) {
  Network net = build_network(parse_spec(text, "test"), {1, side, side});
  net.initialize(seed);
  return net;
}

int64_t counter(Network& net, const std::string& name) {
  for (const TensorView& v : net.state_dict())
    if (v.name == name) return *static_cast<const int64_t*>(v.data);
  ADD_FAILURE() << "no tensor " << name;
  return -1;
}

// Batches of 16, 16 and the epoch's smaller last one of 10 (micro-batches 4, 4, 2 at K = 4).
std::vector<double> run_steps(Network& net, const DataSource& data, int64_t accumulate) {
  auto opt = make_optimizer({.kind = OptimizerKind::SGD, .lr = 0.05, .momentum = 0.9},
                            static_cast<int64_t>(net.parameters().size()));
  TrainStep step(net, data, *opt, 16, {.accumulate = accumulate});
  EXPECT_EQ(net.capacity(), 16 / accumulate) << "the network is reserved for the micro-batch";
  std::vector<int64_t> order(static_cast<size_t>(data.train.count));
  std::iota(order.begin(), order.end(), 0);
  std::vector<double> losses;
  for (int64_t begin = 0, s = 1; begin < data.train.count; begin += 16, ++s) {
    const StepResult r = step.run(order.data() + begin, std::min<int64_t>(16, data.train.count - begin), s, 0.05);
    EXPECT_EQ(r.fault, StepResult::Fault::None);
    losses.push_back(r.loss);
  }
  return losses;
}

// Without batch statistics or dropout, K micro-batches are the batch: the same weights to float
// rounding. Not the same bits, which shows that the micro-batches really ran apart.
TEST(Accumulate, WithoutBatchNormFourMicroBatchesGiveTheWeightsOfOne) {
  const DataSource data = synthetic(42, 28);
  std::string text = preset_text("seed-nobn");
  text.replace(text.find("p=0.25"), 6, "p=0");
  Network one = net_from(text, 28, 1), four = net_from(text, 28, 1);
  const std::vector<double> l1 = run_steps(one, data, 1), l4 = run_steps(four, data, 4);
  for (size_t s = 0; s < l1.size(); ++s) EXPECT_NEAR(l4[s], l1[s], 1e-6 * std::abs(l1[s])) << "step " << s + 1;
  const std::span<const float> a = one.parameters(), b = std::as_const(four).parameters();
  double worst = 0;
  int64_t differ = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    worst = std::max(worst, std::abs(static_cast<double>(a[i]) - b[i]) / (1e-3 + std::abs(a[i])));
    differ += a[i] != b[i];
  }
  EXPECT_LT(worst, 1e-4);
  EXPECT_GT(differ, 0) << "K = 4 gave the bits of K = 1: the micro-batches did not run apart";
  std::printf("largest relative difference %.3g; %lld of %zu parameters differ in some bit\n", worst,
              static_cast<long long>(differ), a.size());
}

TEST(Accumulate, BatchNormCountsMicroBatches) {
  const DataSource data = synthetic(42, 28);
  Network net = net_from(preset_text("seed"), 28, 1);
  run_steps(net, data, 4);
  EXPECT_EQ(counter(net, "conv1_bn.num_batches_tracked"), 4 + 4 + 3);
  EXPECT_EQ(counter(net, "fc1_bn.num_batches_tracked"), 4 + 4 + 3);
}

TEST(Accumulate, AMicroBatchThatDoesNotDivideTheBatchIsAnError) {
  const DataSource data = synthetic(64, 28);
  Network net = net_from(preset_text("seed"), 28, 1);
  auto opt = make_optimizer({}, static_cast<int64_t>(net.parameters().size()));
  try {
    TrainStep step(net, data, *opt, 64, {.accumulate = 3});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "train: accumulate: 3 does not divide the batch size 64");
  }
}

// The last micro-batch's loss is not finite (its images overflow fc1): a skipped step puts back
// the running statistics that all four micro-batches moved.
TEST(Accumulate, ASkippedStepRestoresTheStatisticsOfEveryMicroBatch) {
  DataSource data = synthetic(16, 2);
  data.mean = 0;
  data.std = 1e-3f;  // a pixel of 255 is 1000
  for (int64_t i = 0; i < 16 * 4; ++i) data.train.images[i] = i < 12 * 4 ? 0 : 255;
  const std::string text = "Flatten\nfc1: Linear out_features=3\nbn: BatchNorm1d\nfc2: Linear out_features=10\nLogSoftmax\n";
  for (const bool restore : {true, false}) {
    Network net = net_from(text, 2, 1);
    for (const TensorView& v : net.named_parameters()) {
      if (v.name == "fc1.weight") std::fill_n(static_cast<float*>(v.data), numel(v.shape), 3e38f);
    }
    const std::vector<float> buffers(net.buffers().begin(), net.buffers().end());
    auto opt = make_optimizer({}, static_cast<int64_t>(net.parameters().size()));
    TrainStep step(net, data, *opt, 16, {.restore_on_fault = restore, .accumulate = 4});
    std::vector<int64_t> order(16);
    std::iota(order.begin(), order.end(), 0);
    const StepResult r = step.run(order.data(), 16, 1, 1.0);
    EXPECT_EQ(r.fault, StepResult::Fault::Loss);
    EXPECT_EQ(counter(net, "bn.num_batches_tracked"), restore ? 0 : 4);
    if (restore) {
      EXPECT_EQ(std::vector<float>(net.buffers().begin(), net.buffers().end()), buffers);
    }
  }
}

// A finite loss whose backward overflows: fc1 writes its bias whatever the image (weights 0), fc2
// multiplies it by 3e38 into class 0, so that the loss is finite but fc1's weight gradient, that
// 3e38 again times pixels of 1000, is not. The step names the first such gradient and leaves the
// weights as they were.
TEST(Faults, ANonFiniteGradientSkipsTheStepAndNamesIt) {
  DataSource data = synthetic(16, 2);
  data.mean = 0;
  data.std = 1e-3f;
  std::fill(data.train.images.begin(), data.train.images.end(), uint8_t{255});
  std::fill(data.train.labels.begin(), data.train.labels.end(), uint8_t{3});
  Network net = net_from("Flatten\nfc1: Linear out_features=4\nfc2: Linear out_features=10\nLogSoftmax\n", 2, 1);
  for (const TensorView& v : net.named_parameters()) {
    float* p = static_cast<float*>(v.data);
    if (v.name == "fc1.weight") std::fill_n(p, numel(v.shape), 0.0f);
    if (v.name == "fc1.bias") std::fill_n(p, numel(v.shape), 1e-37f);
    if (v.name == "fc2.weight") {
      std::fill_n(p, numel(v.shape), 0.0f);
      std::fill_n(p, 4, 3e38f);  // class 0's row
    }
  }
  const std::vector<float> weights(net.parameters().begin(), net.parameters().end());
  auto opt = make_optimizer({}, static_cast<int64_t>(net.parameters().size()));
  TrainStep step(net, data, *opt, 16, {});
  std::vector<int64_t> order(16);
  std::iota(order.begin(), order.end(), 0);
  const StepResult r = step.run(order.data(), 16, 1, 1.0);
  EXPECT_TRUE(std::isfinite(r.loss)) << r.loss;
  EXPECT_EQ(r.fault, StepResult::Fault::Gradient);
  EXPECT_EQ(r.where, "fc1.weight");
  EXPECT_NE(describe_fault(r).find("gradient of fc1.weight is not finite"), std::string::npos) << describe_fault(r);
  EXPECT_EQ(std::vector<float>(net.parameters().begin(), net.parameters().end()), weights);
}

class InitFrom : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("bnlab_init_from_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  static constexpr const char* kNet =
      "Flatten\nfc1: Linear out_features=16\nbn: BatchNorm1d\nReLU\nfc2: Linear out_features=10\nLogSoftmax\n";
  const DataSource data_ = synthetic(64, 4);
  TrainObserver quiet_;
  std::filesystem::path dir_;
};

TEST_F(InitFrom, StartsFromTheCheckpointsWeightsAtStepZero) {
  Network trained = net_from(kNet, 4, 1);
  const TrainResult first = train(trained, data_, {.batch_size = 16, .max_steps = 3, .checkpoint_path = path("ck.st"),
                                                   .checkpoint_every = 3}, quiet_);
  ASSERT_EQ(first.steps, 3);
  save_checkpoint(trained, path("model.st"));
  for (const std::string file : {"model.st", "ck.st"}) {  // a model file, or a training checkpoint
    Network tuned = net_from(kNet, 4, 2);  // other weights, replaced by the file's
    TrainOptions o{.batch_size = 16, .max_steps = 1, .init_from = path(file)};
    o.optimizer.lr = 0;  // the weights stay the loaded ones
    const TrainResult r = train(tuned, data_, o, quiet_);
    EXPECT_EQ(r.steps, 1) << file << ": a fresh run, not a resumed one (which would end at step 4)";
    const std::span<const float> a = std::as_const(trained).parameters(), b = std::as_const(tuned).parameters();
    EXPECT_TRUE(std::equal(a.begin(), a.end(), b.begin())) << file;
    EXPECT_EQ(counter(tuned, "bn.num_batches_tracked"), counter(trained, "bn.num_batches_tracked") + 1) << file;
  }
}

TEST_F(InitFrom, AnotherModelOrAResumeIsAnError) {
  Network trained = net_from(kNet, 4, 1);
  save_checkpoint(trained, path("model.st"));
  std::string other = kNet;
  other.replace(other.find("16"), 2, "8");
  Network wrong = net_from(other, 4, 1);
  try {
    train(wrong, data_, {.batch_size = 16, .max_steps = 1, .init_from = path("model.st")}, quiet_);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind(path("model.st") + ": tensor 'fc1.weight': ", 0), 0u) << e.what();
  }
  EXPECT_THROW(train(trained, data_, {.batch_size = 16, .init_from = path("model.st")}, quiet_, path("model.st")), Error);
}

// train --precise-bn: the test pass sees statistics recalibrated over the first N batches of the
// micro-batch's size, as recalibrate_batchnorm gives them for the trained weights.
TEST_F(InitFrom, PreciseBnRecalibratesBeforeTheTestPass) {
  Network net = net_from(kNet, 4, 1);
  train(net, data_, {.batch_size = 16, .max_steps = 5, .accumulate = 2, .precise_bn = 3}, quiet_);
  EXPECT_EQ(counter(net, "bn.num_batches_tracked"), 3);  // as update_bn leaves it, not 5 x 2
  const std::vector<float> after_training(net.buffers().begin(), net.buffers().end());
  recalibrate_batchnorm(net, data_, {.batches = 3, .batch_size = 8});
  EXPECT_EQ(std::vector<float>(net.buffers().begin(), net.buffers().end()), after_training);
}

}  // namespace
}  // namespace bnlab
