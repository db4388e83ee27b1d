#include "bnlab/fold.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "bnlab/spec.h"
#include "layers/layer_kinds.h"

namespace bnlab {
namespace {

struct Fold {
  std::string layer, bn;  // state_dict prefixes: "conv1", "block.0"
  double eps;
};

bool foldable(std::span<const NamedLayer> layers, size_t i) {
  const LayerKind kind = layers[i].layer->kind();
  return (kind == LayerKind::Conv2d || kind == LayerKind::Linear) && i + 1 < layers.size() &&
         layers[i + 1].layer->kind() == LayerKind::BatchNorm &&
         as<BatchNormLayer>(*layers[i + 1].layer).options().track_running_stats;
}

// The spec lines of one level of `layers`, each BN that can be folded left out and recorded,
// its layer before given a bias. `prefix` names the level ("", "block.").
void fold_level(std::span<const NamedLayer> layers, const std::string& prefix, NetworkSpec& out,
                std::vector<Fold>& folds) {
  for (size_t i = 0; i < layers.size(); ++i) {
    SpecLine line = spec_line(layers[i]);
    if (const std::span<const NamedLayer> children = layers[i].layer->children(); !children.empty()) {
      // body and shortcut fold apart: a BN never absorbs into the other chain's layer
      const std::string inner = prefix + layers[i].name + ".";
      const size_t split = layers[i].layer->shortcut_begin();
      out.layers.push_back(line);
      fold_level(children.first(split), inner, out, folds);
      if (split < children.size()) {
        out.layers.push_back(shortcut_divider());
        fold_level(children.subspan(split), inner, out, folds);
      }
      out.layers.push_back(block_end());
      continue;
    }
    if (foldable(layers, i)) {
      folds.push_back({prefix + layers[i].name, prefix + layers[i + 1].name,
                       as<BatchNormLayer>(*layers[i + 1].layer).options().eps});
      std::erase_if(line.settings, [](const SpecSetting& s) { return s.key == "bias"; });
      ++i;  // the BN line is gone
    }
    out.layers.push_back(line);
  }
}

std::map<std::string, TensorView> by_name(std::vector<TensorView> views) {
  std::map<std::string, TensorView> m;
  for (TensorView& v : views) m[v.name] = v;
  return m;
}

}  // namespace

FoldedNetwork fold_batchnorm(Network& trained) {
  NetworkSpec spec{"folded network", {}};
  std::vector<Fold> folds;
  fold_level(trained.layers(), "", spec, folds);
  FoldedNetwork result{spec_text(spec), build_network(spec, trained.input_shape()), static_cast<int>(folds.size())};

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
