#include "experiments/nets.h"

#include "bnlab/error.h"
#include "bnlab/spec.h"

namespace bnlab::experiments {
namespace {

constexpr const char* kSeedBnConvOnly = R"(# The tutorial's network with BN on the conv layers only.
conv1:    Conv2d out_channels=32 kernel_size=3 stride=1
conv1_bn: BatchNorm2d
          ReLU
conv2:    Conv2d out_channels=64 kernel_size=3 stride=1
conv2_bn: BatchNorm2d
          ReLU
          MaxPool2d kernel_size=2
dropout1: Dropout p=0.25
          Flatten
fc1:      Linear out_features=128
          ReLU
fc2:      Linear out_features=10
          LogSoftmax
)";

std::string paper_mlp(bool bn) {
  std::string text = "# Ioffe & Szegedy 2015, sec. 4.1: 3 hidden layers of 100 sigmoids" +
                     std::string(bn ? ", BN before each sigmoid" : "") + "\n    Flatten\n";
  for (int i = 1; i <= 3; ++i) {
    text += "fc" + std::to_string(i) + ": Linear out_features=100\n";
    if (bn) text += "bn" + std::to_string(i) + ": BatchNorm1d\n";
    text += "    Sigmoid\n";
  }
  return text + "out: Linear out_features=10\n    LogSoftmax\n";
}

}  // namespace

std::string model_text(const std::string& name) {
  if (std::string text = preset_text(name); !text.empty()) return text;
  if (name == "seed-bn-conv-only") return kSeedBnConvOnly;
  if (name == "paper-mlp") return paper_mlp(false);
  if (name == "paper-mlp-bn") return paper_mlp(true);
  fail("experiment", "model", "unknown model '" + name + "'");
}

const char* variant_name(DepthVariant v) {
  switch (v) {
    case DepthVariant::Plain: return "plain";
    case DepthVariant::PlainBN: return "plain-bn";
    case DepthVariant::ResidualBN: return "residual-bn";
  }
  return "?";
}

std::string deep_mlp_text(int64_t depth, DepthVariant variant, int64_t width) {
  if (depth < 2) fail("experiment", "depth", "at least 2 Linear layers");
  const std::string linear = "Linear out_features=" + std::to_string(width) + "\n";
  const std::string bn = variant == DepthVariant::Plain ? "" : "BatchNorm1d\n";
  std::string text = "# " + std::to_string(depth) + " Linear layers, " + variant_name(variant) + "\nFlatten\n";
  if (variant == DepthVariant::ResidualBN) {
    if (depth % 2 != 0) fail("experiment", "depth", "a residual network needs an even depth");
    text += linear + bn + "ReLU\n";
    for (int64_t b = 0; b < (depth - 2) / 2; ++b) {
      text += "block" + std::to_string(b + 1) + ": Residual\n  " + linear + "  " + bn + "  ReLU\n  " + linear + "  " +
              bn + "end\nReLU\n";
    }
  } else {
    for (int64_t i = 0; i + 1 < depth; ++i) text += linear + bn + "ReLU\n";
  }
  return text + "Linear out_features=10\nLogSoftmax\n";
}

Network build_model(const std::string& text, const std::string& name, const DataSource& data, uint64_t seed) {
  Network net = build_network(parse_spec(text, "experiment:" + name), {1, data.train.height, data.train.width});
  check_labels(data.train, numel(net.output_shape()));
  check_labels(data.test, numel(net.output_shape()));
  net.initialize(seed);
  return net;
}

}  // namespace bnlab::experiments
