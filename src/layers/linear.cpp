// Linear: y = x W^T + b over (N, in_features); the arithmetic is kernels::linear_*.
#include <string>
#include <vector>

#include "bnlab/error.h"
#include "bnlab/layers.h"
#include "kernels/linear.h"
#include "layers/spec_values.h"
#include "layers/weight_init.h"

namespace bnlab {
namespace {

class Linear final : public Layer {
 public:
  explicit Linear(const LinearOptions& o) : options_(o) {}

  std::string_view type() const override { return "Linear"; }
  LayerKind kind() const override { return LayerKind::Linear; }

  Shape setup(const Shape& in) override {
    if (in.size() != 1) {
      fail("Linear", "input", "expects (features) per sample, got " + to_string(in) +
                                  " (add Flatten before it)");
    }
    if (options_.out_features <= 0) fail("Linear", "out_features", "must be positive");
    checked_numel({options_.out_features, in[0]}, "Linear", "weight");
    in_features_ = in[0];
    return {options_.out_features};
  }

  std::vector<TensorDecl> declare() const override {
    return weight_and_bias({options_.out_features, in_features_}, options_.bias, in_features_, options_.init,
                           options_.init_gain);
  }

  void bind(std::span<const TensorSlot> slots) override {
    weight_ = slots[0];
    if (options_.bias) bias_ = slots[1];
  }

  void reserve(int64_t max_batch, int /*threads*/) override {
    capacity_ = max_batch;
    scratch_.assign(static_cast<size_t>(kernels::linear_scratch_size(max_batch, in_features_, options_.out_features)),
                    0.0f);
  }

  void forward(float* y, const float* x, int64_t n, const RunContext&) override {
    kernels::linear_forward(y, x, weight_.data, bias_.data, n, in_features_, options_.out_features,
                            n <= capacity_ ? scratch_.data() : nullptr);
  }

  void backward(float* dx, const float* dy, const float* x, const float*, int64_t n) override {
    kernels::linear_backward(dx, weight_.grad, bias_.grad, dy, x, weight_.data, n, in_features_,
                             options_.out_features);
  }

  int64_t macs_per_sample() const override { return in_features_ * options_.out_features; }

  std::vector<std::pair<std::string, std::string>> spec_settings() const override {
    std::vector<std::pair<std::string, std::string>> s = {{"out_features", spec_value(options_.out_features)}};
    if (!options_.bias) s.emplace_back("bias", "false");
    add_init_settings(s, options_.init, options_.init_gain);
    return s;
  }

  std::string describe() const override {
    return std::to_string(in_features_) + ", " + std::to_string(options_.out_features) +
           (options_.bias ? "" : ", bias=False");
  }

 private:
  LinearOptions options_;
  int64_t in_features_ = 0;
  TensorSlot weight_, bias_;
  int64_t capacity_ = 0;          // batch the scratch holds (reserve)
  AlignedVector<float> scratch_;  // x^T and y^T (kernels::linear_forward)
};

}  // namespace

std::unique_ptr<Layer> make_linear(const LinearOptions& options) {
  return std::make_unique<Linear>(options);
}

}  // namespace bnlab
