#include "experiments/nets.h"

#include "bnlab/error.h"
#include "bnlab/spec.h"

namespace bnlab::experiments {
std::string model_text(const std::string& name) {
  if (std::string text = preset_text(name); !text.empty()) return text;
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
