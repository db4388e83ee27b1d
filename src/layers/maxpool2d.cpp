// MaxPool2d: keeps the argmax of every window from forward to route gradients in backward.
#include <string>
#include <vector>

#include "bnlab/error.h"
#include "bnlab/layers.h"
#include "kernels/pool/pool.h"
#include "layers/layer_kinds.h"
#include "layers/pool_window.h"
#include "layers/spec_values.h"

namespace bnlab {
namespace {

class MaxPool2d final : public MaxPool2dLayer {
 public:
  explicit MaxPool2d(const MaxPool2dOptions& o) : options_(o) {
    if (options_.stride == 0) options_.stride = options_.kernel_size;
  }

  std::string_view type() const override { return "MaxPool2d"; }

  Shape setup(const Shape& in) override {
    geometry_ = pool_window("MaxPool2d", in, options_.kernel_size, options_.stride, options_.padding);
    return {in[0], geometry_.out_height(), geometry_.out_width()};
  }

  const MaxPool2dOptions& options() const override { return options_; }
  int32_t* argmax() override { return argmax_.data(); }

  void reserve(int64_t max_batch, int) override {
    argmax_.assign(static_cast<size_t>(max_batch * geometry_.channels * geometry_.out_height() *
                                       geometry_.out_width()),
                   0);
  }

  void forward(float* y, const float* x, int64_t n, const RunContext& ctx) override {
    kernels::maxpool2d_forward(y, ctx.backward_follows ? argmax_.data() : nullptr, x, geometry_, n);
  }

  void backward(float* dx, const float* dy, const float*, const float*, int64_t n) override {
    if (dx) kernels::maxpool2d_backward(dx, dy, argmax_.data(), geometry_, n);
  }

  std::vector<std::pair<std::string, std::string>> spec_settings() const override {
    std::vector<std::pair<std::string, std::string>> s = {{"kernel_size", spec_value(options_.kernel_size)}};
    if (options_.stride != options_.kernel_size) s.emplace_back("stride", spec_value(options_.stride));
    if (options_.padding != 0) s.emplace_back("padding", spec_value(options_.padding));
    return s;
  }

  std::string describe() const override {
    return "kernel_size=" + std::to_string(options_.kernel_size) +
           ", stride=" + std::to_string(options_.stride) +
           (options_.padding ? ", padding=" + std::to_string(options_.padding) : "");
  }

 private:
  MaxPool2dOptions options_;
  kernels::PoolGeometry geometry_{};
  std::vector<int32_t> argmax_;  // (N, C, Ho, Wo)
};

}  // namespace

std::unique_ptr<Layer> make_maxpool2d(const MaxPool2dOptions& options) {
  return std::make_unique<MaxPool2d>(options);
}

}  // namespace bnlab
