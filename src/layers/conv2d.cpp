// Conv2d: parameter bookkeeping and scratch; the arithmetic is kernels::conv2d_*.
#include <string>
#include <vector>

#include "bnlab/error.h"
#include "bnlab/layers.h"
#include "kernels/conv.h"
#include "layers/layer_kinds.h"
#include "layers/spec_values.h"
#include "layers/weight_init.h"

namespace bnlab {
namespace {

class Conv2d final : public Conv2dLayer {
 public:
  explicit Conv2d(const Conv2dOptions& o) : options_(o) {}

  std::string_view type() const override { return "Conv2d"; }

  Shape setup(const Shape& in) override {
    if (in.size() != 3) fail("Conv2d", "input", "expects (C, H, W) per sample, got " + to_string(in));
    if (options_.out_channels <= 0) fail("Conv2d", "out_channels", "must be positive");
    if (options_.kernel_size <= 0) fail("Conv2d", "kernel_size", "must be positive");
    if (options_.stride <= 0) fail("Conv2d", "stride", "must be positive");
    if (options_.padding < 0) fail("Conv2d", "padding", "must not be negative");
    // With the input and the padding at most kMaxValues, no size below can overflow.
    if (options_.padding > kMaxValues) {
      fail("Conv2d", "padding", "must be at most " + std::to_string(kMaxValues));
    }
    checked_numel(in, "Conv2d", "input");
    geometry_ = {in[0], in[1], in[2], options_.out_channels, options_.kernel_size,
                 options_.kernel_size, options_.stride, options_.padding};
    if (in[1] + 2 * options_.padding < options_.kernel_size ||
        in[2] + 2 * options_.padding < options_.kernel_size) {
      fail("Conv2d", "kernel_size",
           "kernel " + std::to_string(options_.kernel_size) + " is larger than the padded input " +
               to_string(in));
    }
    const Shape out = {options_.out_channels, geometry_.out_height(), geometry_.out_width()};
    checked_numel(out, "Conv2d", "output");
    checked_numel({options_.out_channels, in[0], options_.kernel_size, options_.kernel_size},
                  "Conv2d", "weight");
    checked_numel({geometry_.col_rows(), out[1] * out[2]}, "Conv2d", "im2col scratch");
    return out;
  }

  std::vector<TensorDecl> declare() const override {
    return weight_and_bias({geometry_.out_channels, geometry_.in_channels, geometry_.kernel_h, geometry_.kernel_w},
                           options_.bias, geometry_.col_rows(), options_.init, options_.init_gain);
  }

  void bind(std::span<const TensorSlot> slots) override {
    weight_ = slots[0];
    if (options_.bias) bias_ = slots[1];
  }

  void reserve(int64_t max_batch, int threads) override {
    threads_ = threads;
    scratch_.assign(static_cast<size_t>(kernels::conv_scratch_size(geometry_, threads)), 0.0f);
    dw_scratch_.assign(static_cast<size_t>(kernels::conv_weight_scratch_size(geometry_, threads)), 0.0f);
    if (options_.bias) {
      bias_scratch_.assign(static_cast<size_t>(kernels::conv_bias_scratch_size(geometry_, max_batch)), 0.0);
    }
  }

  void forward(float* y, const float* x, int64_t n, const RunContext&) override {
    kernels::conv2d_forward(y, x, weight_.data, bias_.data, scratch_.data(), geometry_, n, threads_);
  }

  bool can_pool() const override { return kernels::conv_can_pool(geometry_); }

  void forward_epilogue(float* y, const float* x, int64_t n, const kernels::ConvEpilogue<float>& e) override {
    if (e.maxpool2x2 && !can_pool()) fail("Conv2d", "epilogue", "this convolution cannot pool in its output loop");
    kernels::conv2d_forward(y, x, weight_.data, bias_.data, scratch_.data(), geometry_, n, threads_, e);
  }

  void backward(float* dx, const float* dy, const float* x, const float*, int64_t n) override {
    kernels::conv2d_backward(dx, weight_.grad, bias_.grad, dy, x, weight_.data, scratch_.data(),
                             dw_scratch_.data(), bias_scratch_.data(), geometry_, n, threads_);
  }

  int64_t macs_per_sample() const override {
    return geometry_.weight_size() * geometry_.out_height() * geometry_.out_width();
  }

  std::vector<std::pair<std::string, std::string>> spec_settings() const override {
    std::vector<std::pair<std::string, std::string>> s = {{"out_channels", spec_value(options_.out_channels)},
                                                          {"kernel_size", spec_value(options_.kernel_size)}};
    if (options_.stride != 1) s.emplace_back("stride", spec_value(options_.stride));
    if (options_.padding != 0) s.emplace_back("padding", spec_value(options_.padding));
    if (!options_.bias) s.emplace_back("bias", "false");
    add_init_settings(s, options_.init, options_.init_gain);
    return s;
  }

  std::string describe() const override {
    return std::to_string(geometry_.in_channels) + ", " + std::to_string(options_.out_channels) +
           ", kernel_size=" + std::to_string(options_.kernel_size) +
           ", stride=" + std::to_string(options_.stride) +
           (options_.padding ? ", padding=" + std::to_string(options_.padding) : "") +
           (options_.bias ? "" : ", bias=False");
  }

 private:
  Conv2dOptions options_;
  kernels::ConvGeometry geometry_{};
  TensorSlot weight_, bias_;
  int threads_ = 1;
  AlignedVector<float> scratch_;     // im2col columns or Winograd tiles (kernels/conv.h)
  AlignedVector<float> dw_scratch_;  // per-thread partial weight gradients
  std::vector<double> bias_scratch_;  // each sample's sum of each output plane (the bias gradient)
};

}  // namespace

std::unique_ptr<Layer> make_conv2d(const Conv2dOptions& options) {
  return std::make_unique<Conv2d>(options);
}

}  // namespace bnlab
