// Scale and Bias: one learnable scalar times or plus every value, the pieces SkipInit and Fixup
// add to a residual branch. Backward: d weight = sum(dy * x), dx = weight * dy; d bias = sum(dy),
// dx = dy. The arithmetic is kernels/scalar.h.
#include <algorithm>
#include <string>
#include <vector>

#include "bnlab/error.h"
#include "bnlab/layers.h"
#include "kernels/scalar.h"
#include "layers/spec_values.h"

namespace bnlab {
namespace {

class Scale final : public Layer {
 public:
  explicit Scale(double init) : init_(init) {
    if (init_ != 0 && init_ != 1) fail("Scale", "init", "must be 0 (SkipInit) or 1 (Fixup)");
  }
  std::string_view type() const override { return "Scale"; }
  LayerKind kind() const override { return LayerKind::Scale; }
  Shape setup(const Shape& in) override {
    size_ = checked_numel(in, "Scale", "input");
    return in;
  }
  std::vector<TensorDecl> declare() const override {
    return {{"weight", {1}, Role::Parameter, init_ == 0 ? Init::Zeros : Init::Ones}};
  }
  void bind(std::span<const TensorSlot> slots) override { weight_ = slots[0]; }
  void reserve(int64_t max_batch, int) override { partials_.assign(static_cast<size_t>(max_batch), 0.0); }
  void forward(float* y, const float* x, int64_t n, const RunContext&) override {
    kernels::scale_forward(y, x, weight_.data[0], n * size_);
  }
  void backward(float* dx, const float* dy, const float* x, const float*, int64_t n) override {
    weight_.grad[0] += static_cast<float>(kernels::batch_sum(dy, x, n, size_, partials_.data()));
    if (dx) kernels::scale_forward(dx, dy, weight_.data[0], n * size_);
  }
  std::vector<std::pair<std::string, std::string>> spec_settings() const override {
    if (init_ == 1) return {};
    return {{"init", spec_value(init_)}};
  }
  std::string describe() const override { return "y = x * weight, weight started at " + spec_value(init_); }

 private:
  double init_;
  int64_t size_ = 0;  // values per sample
  TensorSlot weight_;
  std::vector<double> partials_;  // per sample, for the gradient's sum
};

class Bias final : public Layer {
 public:
  std::string_view type() const override { return "Bias"; }
  LayerKind kind() const override { return LayerKind::Bias; }
  Shape setup(const Shape& in) override {
    size_ = checked_numel(in, "Bias", "input");
    return in;
  }
  std::vector<TensorDecl> declare() const override { return {{"bias", {1}, Role::Parameter, Init::Zeros}}; }
  void bind(std::span<const TensorSlot> slots) override { bias_ = slots[0]; }
  void reserve(int64_t max_batch, int) override { partials_.assign(static_cast<size_t>(max_batch), 0.0); }
  void forward(float* y, const float* x, int64_t n, const RunContext&) override {
    kernels::bias_forward(y, x, bias_.data[0], n * size_);
  }
  void backward(float* dx, const float* dy, const float*, const float*, int64_t n) override {
    bias_.grad[0] += static_cast<float>(kernels::batch_sum(dy, static_cast<const float*>(nullptr), n, size_,
                                                           partials_.data()));
    if (dx) std::copy_n(dy, n * size_, dx);
  }
  std::string describe() const override { return "y = x + bias, bias started at 0"; }

 private:
  int64_t size_ = 0;
  TensorSlot bias_;
  std::vector<double> partials_;
};

}  // namespace

std::unique_ptr<Layer> make_scale(double init) { return std::make_unique<Scale>(init); }
std::unique_ptr<Layer> make_bias() { return std::make_unique<Bias>(); }

}  // namespace bnlab
