// Dropout: inverted scaling in training (kept values times 1/(1-p)), identity in eval.
// The mask comes from the step's random key, so a run is reproducible and resumable.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "bnlab/error.h"
#include "bnlab/layers.h"
#include "kernels/elementwise.h"
#include "layers/spec_values.h"

namespace bnlab {
namespace {

class Dropout final : public Layer {
 public:
  explicit Dropout(const DropoutOptions& o) : p_option_(o.p), p_(static_cast<float>(o.p)) {
    if (!(o.p >= 0 && o.p < 1)) fail("Dropout", "p", "must be in [0, 1)");
  }

  std::string_view type() const override { return "Dropout"; }
  LayerKind kind() const override { return LayerKind::Dropout; }

  Shape setup(const Shape& in) override {
    size_ = numel(in);
    return in;
  }

  void reserve(int64_t max_batch, int) override { keep_.assign(static_cast<size_t>(max_batch * size_), 1); }

  void forward(float* y, const float* x, int64_t n, const RunContext& ctx) override {
    training_ = ctx.mode == Mode::Train && ctx.dropout == DropoutMode::AsMode && p_ > 0;
    if (training_) {
      kernels::dropout_forward(y, keep_.data(), x, p_, ctx.random_key, n * size_);
    } else {
      std::memcpy(y, x, static_cast<size_t>(n * size_) * sizeof(float));
    }
  }

  void backward(float* dx, const float* dy, const float*, const float*, int64_t n) override {
    if (!dx) return;
    if (training_) {
      kernels::dropout_backward(dx, dy, keep_.data(), p_, n * size_);
    } else {
      std::memcpy(dx, dy, static_cast<size_t>(n * size_) * sizeof(float));
    }
  }

  std::vector<std::pair<std::string, std::string>> spec_settings() const override {
    return {{"p", spec_value(static_cast<double>(p_option_))}};
  }

  std::string describe() const override {
    char text[32];
    std::snprintf(text, sizeof text, "p=%g", static_cast<double>(p_));
    return text;
  }

 private:
  double p_option_;  // as given, for spec_settings
  float p_;
  int64_t size_ = 0;
  bool training_ = false;
  std::vector<uint8_t> keep_;  // (N, size): 1 where the value was kept
};

}  // namespace

std::unique_ptr<Layer> make_dropout(const DropoutOptions& options) {
  return std::make_unique<Dropout>(options);
}

}  // namespace bnlab
