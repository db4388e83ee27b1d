#include "serve/session.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "bnlab/error.h"
#include "bnlab/rng.h"
#include "bnlab/spec.h"
#include "bnlab/threads.h"

namespace bnlab::serve {
namespace {

constexpr int64_t kMaxMapChannels = 8;   // activation maps shown per layer
constexpr int64_t kMaxMapValues = 512;   // a flat layer's values shown
constexpr int kHistogramBins = 40;

bool is_batchnorm(const Layer& l) { return l.type() == "BatchNorm1d" || l.type() == "BatchNorm2d"; }

// Values as 0..255 between their min and max: a map's pixels, small in JSON.
nlohmann::json quantized(const float* v, int64_t count) {
  const auto [lo, hi] = std::minmax_element(v, v + count);
  const float span = *hi - *lo;
  std::vector<int> q(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) q[static_cast<size_t>(i)] = span > 0 ? static_cast<int>(std::lround((v[i] - *lo) / span * 255)) : 0;
  return {{"min", *lo}, {"max", *hi}, {"values", q}};
}

nlohmann::json histogram(const float* v, int64_t count) {
  const auto [lo, hi] = std::minmax_element(v, v + count);
  std::vector<int64_t> bins(kHistogramBins, 0);
  const double width = (static_cast<double>(*hi) - *lo) / kHistogramBins;
  for (int64_t i = 0; i < count; ++i) {
    const int b = width > 0 ? static_cast<int>((v[i] - *lo) / width) : 0;
    ++bins[static_cast<size_t>(std::clamp(b, 0, kHistogramBins - 1))];
  }
  return {{"min", *lo}, {"max", *hi}, {"counts", bins}};
}

// One layer's output for sample 0: up to kMaxMapChannels maps of (H, W), or a row of values.
nlohmann::json activation_map(const float* y, const Shape& shape) {
  const int64_t channels = shape.size() == 3 ? shape[0] : 1;
  const int64_t height = shape.size() == 3 ? shape[1] : 1;
  const int64_t width = shape.size() == 3 ? shape[2] : std::min(numel(shape), kMaxMapValues);
  const int64_t shown = std::min(channels, kMaxMapChannels);
  nlohmann::json map = quantized(y, shown * height * width);
  map["channels"] = shown;
  map["of_channels"] = channels;
  map["height"] = height;
  map["width"] = width;
  return map;
}

std::vector<float> tensor_values(const std::map<std::string, TensorView>& dict, const std::string& name, int64_t c, float fallback) {
  const auto it = dict.find(name);
  if (it == dict.end()) return std::vector<float>(static_cast<size_t>(c), fallback);
  const float* p = static_cast<const float*>(it->second.data);
  return std::vector<float>(p, p + c);
}

// Per channel of x (n, C, S): the batch mean and biased variance, as BN normalizes with, in double.
void batch_moments(std::vector<double>& mean, std::vector<double>& var, const float* x, int64_t n, int64_t c, int64_t s) {
  mean.assign(static_cast<size_t>(c), 0);
  var.assign(static_cast<size_t>(c), 0);
  const double count = static_cast<double>(n * s);
  for (int64_t ch = 0; ch < c; ++ch) {
    double sum = 0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < s; ++k) sum += x[(i * c + ch) * s + k];
    const double m = sum / count;
    double sq = 0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < s; ++k) sq += (x[(i * c + ch) * s + k] - m) * (x[(i * c + ch) * s + k] - m);
    mean[static_cast<size_t>(ch)] = m;
    var[static_cast<size_t>(ch)] = sq / count;
  }
}

}  // namespace

std::string without_dropout(const std::string& text) {
  NetworkSpec spec = parse_spec(text, "served model");
  for (SpecLine& line : spec.layers) {
    if (line.type != "Dropout") continue;
    std::erase_if(line.settings, [](const SpecSetting& s) { return s.key == "p"; });
    line.settings.push_back({.key = "p", .value = "0"});
  }
  return spec_text(spec);
}

Session::Session(const DataSource& data, int threads) : data_(data), threads_(threads) {}

void Session::serve(SharedWeights weights) {
  const std::lock_guard lock(served_mutex_);
  served_ = std::move(weights);
}

SharedWeights Session::served() const {
  const std::lock_guard lock(served_mutex_);
  return served_;
}

nlohmann::json Session::look(const ModelWeights& model, const LookRequest& request) {
  const DigitOptions options;
  const Digit digit = center_digit(request.drawing, options);
  if (digit.blank) fail("drawing", "pixels", "no ink found (the drawing is blank)");

  const std::lock_guard lock(look_mutex_);
  set_threads(threads_);  // this request's thread: OpenMP teams as the network was reserved for
  const int64_t n = 1 + kBatchMates;
  if (!look_net_ || look_spec_ != model.spec) {
    look_net_ = std::make_unique<Network>(build_digit_network(without_dropout(model.spec), "served model"));
    look_spec_ = model.spec;
  }
  Network& net = *look_net_;
  net.reserve(n, {.fusion = Fusion::None});  // every layer's own output, a BN's before its ReLU
  restore_weights(net, model);  // the copy starts from the model each time

  // gamma, beta and the running statistics as the model has them, before this batch.
  std::map<std::string, TensorView> dict;
  for (TensorView& v : net.state_dict()) dict[v.name] = v;
  nlohmann::json bn = nlohmann::json::array();
  for (size_t i = 0; i < net.layer_count(); ++i) {
    if (!is_batchnorm(net.layer(i))) continue;
    const std::string& name = net.layer_name(i);
    const int64_t c = net.output_shape(i)[0];
    bn.push_back({{"layer", i}, {"name", name}, {"type", net.layer(i).type()}, {"channels", c},
                  {"gamma", tensor_values(dict, name + ".weight", c, 1)},
                  {"beta", tensor_values(dict, name + ".bias", c, 0)},
                  {"running_mean", tensor_values(dict, name + ".running_mean", c, 0)},
                  {"running_var", tensor_values(dict, name + ".running_var", c, 1)}});
  }

  const int64_t pixels = options.size * options.size;
  x_.resize(static_cast<size_t>(n * pixels));
  labels_.resize(static_cast<size_t>(n));
  normalize_digit(x_.data(), digit.image, options);
  std::vector<int64_t> mates(static_cast<size_t>(kBatchMates));
  Rng rng(derive_key(request.mates_seed, 0x6d61746573));  // "mates"
  for (int64_t& m : mates) m = static_cast<int64_t>(rng.below(static_cast<uint64_t>(data_.test.count)));
  gather_batch(x_.data() + pixels, labels_.data() + 1, data_.test, data_, mates.data(), kBatchMates);

  const float* out = net.forward(x_.data(), n, {.mode = request.mode});
  const int64_t classes = numel(net.output_shape());
  const float peak = *std::max_element(out, out + classes);
  std::vector<double> p(static_cast<size_t>(classes));
  double sum = 0;
  for (int64_t k = 0; k < classes; ++k) sum += p[static_cast<size_t>(k)] = std::exp(out[k] - peak);
  for (double& v : p) v /= sum;
  int64_t mates_right = 0;
  for (int64_t i = 1; i < n; ++i) {
    const float* row = out + i * classes;
    mates_right += std::max_element(row, row + classes) - row == labels_[static_cast<size_t>(i)];
  }

  nlohmann::json layers = nlohmann::json::array();
  for (size_t i = 0; i < net.layer_count(); ++i) {
    layers.push_back({{"name", net.layer_name(i)}, {"type", net.layer(i).type()}, {"shape", net.output_shape(i)},
                      {"map", activation_map(net.activation(i), net.output_shape(i))}});
  }
  std::vector<double> mean, var;
  for (nlohmann::json& b : bn) {
    const size_t i = b["layer"];
    const Shape& in_shape = i == 0 ? net.input_shape() : net.output_shape(i - 1);
    const float* in = i == 0 ? x_.data() : net.activation(i - 1);
    const int64_t c = in_shape[0], s = numel(in_shape) / c;
    batch_moments(mean, var, in, n, c, s);
    b["batch_mean"] = mean;
    b["batch_var"] = var;
    b["hist_before"] = histogram(in, n * c * s);
    b["hist_after"] = histogram(net.activation(i), n * c * s);
  }
  std::vector<int> image(digit.image.pixels.begin(), digit.image.pixels.end());
  return {{"model", model.label}, {"mode", request.mode == Mode::Train ? "train" : "eval"},
          {"probabilities", p}, {"class", std::max_element(p.begin(), p.end()) - p.begin()},
          {"digit", image}, {"batch", {{"size", n}, {"mates", kBatchMates}, {"seed", request.mates_seed},
                                      {"mates_correct", mates_right}}},
          {"layers", layers}, {"bn", bn}};
}

}  // namespace bnlab::serve
