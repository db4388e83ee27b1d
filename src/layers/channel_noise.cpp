// ChannelNoise: the "noisy BatchNorm" of Santurkar et al. (2018, sec. 2.1), noise that makes a
// layer's input distribution shift at every step. In training, each channel c (dimension 1 of
// the input) is scaled and shifted, y = x * s_c + m_c, with m_c ~ U(-shift, shift) and
// s_c ~ U(1, scale) drawn afresh from the step's random key (the same for every sample of the
// batch, so the batch's statistics move, not only its samples). In eval it applies the noise's
// mean, y = x * (1 + scale) / 2 (the mean shift is 0), as dropout's scaling keeps the training
// expectation: the next layer then sees the scale it was trained on.
#include <cstdio>
#include <string>
#include <vector>

#include "bnlab/error.h"
#include "bnlab/layers.h"
#include "bnlab/rng.h"
#include "layers/spec_values.h"

namespace bnlab {
namespace {

class ChannelNoise final : public Layer {
 public:
  explicit ChannelNoise(const ChannelNoiseOptions& o) : options_(o) {
    if (!(o.shift >= 0 && o.shift <= 100)) fail("ChannelNoise", "shift", "must be in [0, 100]");
    if (!(o.scale >= 1 && o.scale <= 100)) fail("ChannelNoise", "scale", "must be in [1, 100]");
  }

  std::string_view type() const override { return "ChannelNoise"; }
  LayerKind kind() const override { return LayerKind::ChannelNoise; }

  Shape setup(const Shape& in) override {
    if (in.empty()) fail("ChannelNoise", "input", "needs a channel dimension");
    channels_ = in[0];
    spatial_ = numel(in) / channels_;
    scale_.assign(static_cast<size_t>(channels_), 1.0f);
    shift_.assign(static_cast<size_t>(channels_), 0.0f);
    return in;
  }

  void forward(float* y, const float* x, int64_t n, const RunContext& ctx) override {
    training_ = ctx.mode == Mode::Train;
    if (!training_) {
      const float mean_scale = eval_scale();
      for (int64_t i = 0; i < n * channels_ * spatial_; ++i) y[i] = x[i] * mean_scale;
      return;
    }
    const float shift = static_cast<float>(options_.shift), spread = static_cast<float>(options_.scale - 1);
    for (int64_t c = 0; c < channels_; ++c) {
      shift_[static_cast<size_t>(c)] = shift * (2 * random_uniform(ctx.random_key, 2 * static_cast<uint64_t>(c)) - 1);
      scale_[static_cast<size_t>(c)] = 1 + spread * random_uniform(ctx.random_key, 2 * static_cast<uint64_t>(c) + 1);
    }
    for (int64_t i = 0; i < n; ++i)
      for (int64_t c = 0; c < channels_; ++c) {
        const float s = scale_[static_cast<size_t>(c)], m = shift_[static_cast<size_t>(c)];
        const int64_t at = (i * channels_ + c) * spatial_;
        for (int64_t k = 0; k < spatial_; ++k) y[at + k] = x[at + k] * s + m;
      }
  }

  void backward(float* dx, const float* dy, const float*, const float*, int64_t n) override {
    if (!dx) return;
    if (!training_) {
      const float mean_scale = eval_scale();
      for (int64_t i = 0; i < n * channels_ * spatial_; ++i) dx[i] = dy[i] * mean_scale;
      return;
    }
    for (int64_t i = 0; i < n; ++i)
      for (int64_t c = 0; c < channels_; ++c) {
        const float s = scale_[static_cast<size_t>(c)];
        const int64_t at = (i * channels_ + c) * spatial_;
        for (int64_t k = 0; k < spatial_; ++k) dx[at + k] = dy[at + k] * s;
      }
  }

  float eval_scale() const { return static_cast<float>((1 + options_.scale) / 2); }

  std::vector<std::pair<std::string, std::string>> spec_settings() const override {
    return {{"shift", spec_value(options_.shift)}, {"scale", spec_value(options_.scale)}};
  }

  std::string describe() const override {
    char text[64];
    std::snprintf(text, sizeof text, "shift=%g scale=%g", options_.shift, options_.scale);
    return text;
  }

 private:
  ChannelNoiseOptions options_;
  int64_t channels_ = 0, spatial_ = 0;
  bool training_ = false;
  std::vector<float> scale_, shift_;  // this step's draws
};

}  // namespace

std::unique_ptr<Layer> make_channel_noise(const ChannelNoiseOptions& options) {
  return std::make_unique<ChannelNoise>(options);
}

}  // namespace bnlab
