#include "bnlab/fold.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "bnlab/error.h"

namespace bnlab {
namespace {

const SpecSetting* setting(const SpecLine& line, const std::string& key) {
  for (const SpecSetting& s : line.settings)
    if (s.key == key) return &s;
  return nullptr;
}

bool is_batchnorm(const SpecLine& line) { return line.type == "BatchNorm1d" || line.type == "BatchNorm2d"; }

bool tracks_statistics(const SpecLine& line) {
  const SpecSetting* s = setting(line, "track_running_stats");
  return !s || s->value == "true" || s->value == "True";
}

double eps_of(const SpecLine& line) {
  const SpecSetting* s = setting(line, "eps");
  return s ? std::stod(s->value) : 1e-5;
}

std::map<std::string, TensorView> by_name(std::vector<TensorView> views) {
  std::map<std::string, TensorView> m;
  for (TensorView& v : views) m[v.name] = v;
  return m;
}

}  // namespace

std::string spec_text(const NetworkSpec& spec) {
  std::string text;
  for (const SpecLine& line : spec.layers) {
    if (!line.name.empty()) text += line.name + ": ";
    text += line.type;
    for (const SpecSetting& s : line.settings) text += " " + s.key + "=" + s.value;
    text += "\n";
  }
  return text;
}

FoldedNetwork fold_batchnorm(const NetworkSpec& spec, Network& trained, const Shape& input_shape) {
  struct Fold {
    std::string layer, bn;
    double eps;
  };
  NetworkSpec folded{spec.source + " (BN folded)", {}};
  std::vector<Fold> folds;
  for (size_t i = 0; i < spec.layers.size(); ++i) {
    SpecLine line = spec.layers[i];
    if (line.name.empty()) line.name = std::to_string(i);  // keep the original tensor names
    const bool foldable = (line.type == "Conv2d" || line.type == "Linear") && i + 1 < spec.layers.size() &&
                          is_batchnorm(spec.layers[i + 1]) && tracks_statistics(spec.layers[i + 1]);
    if (foldable) {
      const SpecLine& bn = spec.layers[i + 1];
      folds.push_back({line.name, bn.name.empty() ? std::to_string(i + 1) : bn.name, eps_of(bn)});
      std::erase_if(line.settings, [](const SpecSetting& s) { return s.key == "bias"; });
      line.settings.push_back({"bias", "true", 0});
      ++i;  // the BN line is gone
    }
    folded.layers.push_back(line);
  }
  FoldedNetwork result{folded, spec_text(folded), build_network(folded, input_shape)};

  auto source = by_name(trained.state_dict());
  // Everything that survives keeps its name and its values...
  for (const TensorView& t : result.net.state_dict()) {
    auto it = source.find(t.name);
    if (it != source.end() && it->second.shape == t.shape && it->second.dtype == t.dtype) {
      std::copy_n(static_cast<const char*>(it->second.data), numel(t.shape) * (t.dtype == DType::F32 ? 4 : 8),
                  static_cast<char*>(t.data));
    } else if (t.dtype == DType::F32) {
      std::fill_n(static_cast<float*>(t.data), numel(t.shape), 0.0f);  // a bias the layer lacked
    }
  }
  // ...and then each folded layer absorbs its BN.
  auto target = by_name(result.net.state_dict());
  for (const Fold& f : folds) {
    float* w = static_cast<float*>(target.at(f.layer + ".weight").data);
    float* b = static_cast<float*>(target.at(f.layer + ".bias").data);
    const Shape& w_shape = target.at(f.layer + ".weight").shape;
    const int64_t channels = w_shape[0], per_channel = numel(w_shape) / channels;
    const float* mean = static_cast<const float*>(source.at(f.bn + ".running_mean").data);
    const float* var = static_cast<const float*>(source.at(f.bn + ".running_var").data);
    const auto gamma = source.find(f.bn + ".weight"), beta = source.find(f.bn + ".bias");
    for (int64_t o = 0; o < channels; ++o) {
      const double g = gamma != source.end() ? static_cast<const float*>(gamma->second.data)[o] : 1.0;
      const double shift = beta != source.end() ? static_cast<const float*>(beta->second.data)[o] : 0.0;
      const double scale = g / std::sqrt(static_cast<double>(var[o]) + f.eps);
      for (int64_t j = 0; j < per_channel; ++j) w[o * per_channel + j] = static_cast<float>(w[o * per_channel + j] * scale);
      b[o] = static_cast<float>((b[o] - static_cast<double>(mean[o])) * scale + shift);
    }
  }
  return result;
}

}  // namespace bnlab
