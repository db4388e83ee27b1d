// Recalibration (precise BN) against statistics computed here in double from the gathered
// batches; its momentum put back; dropout off equal to a network without dropout.
// tests/recalibrate_pytorch.py holds it to torch.optim.swa_utils.update_bn.
#include "bnlab/recalibrate.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <string>

#include "bnlab/error.h"
#include "bnlab/spec.h"

namespace bnlab {
namespace {

DataSource synthetic(int64_t count, int64_t side) {
  DataSource d;
  d.mean = 0.1307f;
  d.std = 0.3081f;
  d.train.count = count;
  d.train.height = d.train.width = side;
  for (int64_t i = 0; i < count * side * side; ++i) d.train.images.push_back(static_cast<uint8_t>((i * i * 13 + i) % 256));
  d.train.labels.assign(static_cast<size_t>(count), 0);
  return d;
}

Network net_from(const std::string& text, int64_t side) {
  Network net = build_network(parse_spec(text, "test"), {1, side, side});
  net.initialize(1);
  return net;
}

// The mean and unbiased variance of the gathered samples [begin, begin + n), in double.
std::pair<double, double> moments(const DataSource& d, int64_t begin, int64_t n) {
  std::vector<float> x(static_cast<size_t>(n * 16));
  std::vector<uint8_t> labels(static_cast<size_t>(n));
  std::vector<int64_t> idx(static_cast<size_t>(n));
  std::iota(idx.begin(), idx.end(), begin);
  gather_batch(x.data(), labels.data(), d.train, d, idx.data(), n);
  const double mean = std::accumulate(x.begin(), x.end(), 0.0) / static_cast<double>(x.size());
  double ss = 0;
  for (float v : x) ss += (v - mean) * (v - mean);
  return {mean, ss / static_cast<double>(x.size() - 1)};
}

TEST(Recalibrate, RunningStatisticsAreTheAverageOverTheBatches) {
  const DataSource data = synthetic(64, 4);
  Network net = net_from("bn: BatchNorm2d momentum=0.3\nFlatten\nfc: Linear out_features=10\nLogSoftmax\n", 4);
  net.reserve(8);
  std::vector<float> x(8 * 16, 5.0f);  // statistics that are not the defaults
  net.forward(x.data(), 8, {.mode = Mode::Train});
  const RecalibrateResult r = recalibrate_batchnorm(net, data, {.batches = 5, .batch_size = 8});
  EXPECT_EQ(r.layers, 1);
  EXPECT_EQ(r.samples, 40);
  double mean = 0, var = 0;
  for (int64_t b = 0; b < 5; ++b) {
    const auto [m, v] = moments(data, b * 8, 8);
    mean += m / 5;
    var += v / 5;
  }
  std::vector<TensorView> state = net.state_dict();
  auto value = [&](const std::string& name) {
    for (const TensorView& v : state)
      if (v.name == name) return v.dtype == DType::F32 ? static_cast<double>(*static_cast<const float*>(v.data))
                                                       : static_cast<double>(*static_cast<const int64_t*>(v.data));
    ADD_FAILURE() << name;
    return 0.0;
  };
  EXPECT_NEAR(value("bn.running_mean"), mean, 1e-6 * std::abs(mean) + 1e-7);
  EXPECT_NEAR(value("bn.running_var"), var, 1e-6 * var);
  EXPECT_EQ(value("bn.num_batches_tracked"), 5);  // as update_bn leaves it

  // The layer's own momentum is back: one more training batch moves the mean by 0.3 of the way.
  const double before = value("bn.running_mean");
  net.forward(x.data(), 8, {.mode = Mode::Train});
  EXPECT_NEAR(value("bn.running_mean"), 0.7 * before + 0.3 * 5.0, 1e-5);
}

TEST(Recalibrate, DropoutOffIsTheNetworkWithoutDropout) {
  const DataSource data = synthetic(64, 4);
  const std::string text = "Flatten\nfc1: Linear out_features=6\nd: Dropout p=0.5\nbn: BatchNorm1d\nfc2: Linear out_features=10\nLogSoftmax\n";
  std::string plain = text;
  plain.replace(plain.find("p=0.5"), 5, "p=0");
  Network dropped = net_from(text, 4), off = net_from(text, 4), none = net_from(plain, 4);
  recalibrate_batchnorm(dropped, data, {.batches = 4, .batch_size = 16});
  recalibrate_batchnorm(off, data, {.batches = 4, .batch_size = 16, .dropout = DropoutMode::Off});
  recalibrate_batchnorm(none, data, {.batches = 4, .batch_size = 16});
  auto buffers = [](Network& n) { return std::vector<float>(n.buffers().begin(), n.buffers().end()); };
  EXPECT_EQ(buffers(off), buffers(none));
  EXPECT_NE(buffers(dropped), buffers(none));
}

TEST(Recalibrate, TooFewTrainingImagesIsAnError) {
  const DataSource data = synthetic(64, 4);
  Network net = net_from("bn: BatchNorm2d\nFlatten\nfc: Linear out_features=10\nLogSoftmax\n", 4);
  try {
    recalibrate_batchnorm(net, data, {.batches = 9, .batch_size = 8});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "recalibrate: batches: 9 batches of 8 are more than the 64 training images hold (8)");
  }
}

TEST(Recalibrate, ANetworkWithoutBatchNormIsLeftAlone) {
  const DataSource data = synthetic(64, 4);
  Network net = net_from("Flatten\nfc: Linear out_features=10\nLogSoftmax\n", 4);
  EXPECT_EQ(recalibrate_batchnorm(net, data, {.batches = 2, .batch_size = 8}).layers, 0);
}

}  // namespace
}  // namespace bnlab
