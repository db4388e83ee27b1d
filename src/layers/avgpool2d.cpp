// AvgPool2d and AdaptiveAvgPool2d(1): pooling by the window's mean, the second over the whole
// plane (global average pooling, the head of He et al.'s ResNets). Nothing is saved for
// backward: the gradient spreads evenly over each window. The arithmetic is kernels/pool.
#include <string>
#include <vector>

#include "bnlab/error.h"
#include "bnlab/layers.h"
#include "kernels/pool/avgpool.h"
#include "layers/pool_window.h"
#include "layers/spec_values.h"

namespace bnlab {
namespace {

class AvgPool2d final : public Layer {
 public:
  explicit AvgPool2d(const AvgPool2dOptions& o) : options_(o) {
    if (options_.stride == 0) options_.stride = options_.kernel_size;
  }

  std::string_view type() const override { return "AvgPool2d"; }
  LayerKind kind() const override { return LayerKind::AvgPool2d; }

  Shape setup(const Shape& in) override {
    geometry_ = pool_window("AvgPool2d", in, options_.kernel_size, options_.stride, options_.padding);
    return {in[0], geometry_.out_height(), geometry_.out_width()};
  }

  void forward(float* y, const float* x, int64_t n, const RunContext&) override {
    kernels::avgpool2d_forward(y, x, geometry_, n);
  }

  void backward(float* dx, const float* dy, const float*, const float*, int64_t n) override {
    if (dx) kernels::avgpool2d_backward(dx, dy, geometry_, n);
  }

  std::vector<std::pair<std::string, std::string>> spec_settings() const override {
    std::vector<std::pair<std::string, std::string>> s = {{"kernel_size", spec_value(options_.kernel_size)}};
    if (options_.stride != options_.kernel_size) s.emplace_back("stride", spec_value(options_.stride));
    if (options_.padding != 0) s.emplace_back("padding", spec_value(options_.padding));
    return s;
  }

  std::string describe() const override {
    return "kernel_size=" + std::to_string(options_.kernel_size) + ", stride=" + std::to_string(options_.stride) +
           (options_.padding ? ", padding=" + std::to_string(options_.padding) : "");
  }

 private:
  AvgPool2dOptions options_;
  kernels::PoolGeometry geometry_{};
};

class GlobalAvgPool final : public Layer {
 public:
  std::string_view type() const override { return "AdaptiveAvgPool2d"; }
  LayerKind kind() const override { return LayerKind::GlobalAvgPool; }

  Shape setup(const Shape& in) override {
    if (in.size() != 3) fail("AdaptiveAvgPool2d", "input", "expects (C, H, W) per sample, got " + to_string(in));
    checked_numel(in, "AdaptiveAvgPool2d", "input");
    channels_ = in[0];
    plane_ = in[1] * in[2];
    return {in[0], 1, 1};
  }

  void forward(float* y, const float* x, int64_t n, const RunContext&) override {
    kernels::plane_mean_forward(y, x, n * channels_, plane_);
  }

  void backward(float* dx, const float* dy, const float*, const float*, int64_t n) override {
    if (dx) kernels::plane_mean_backward(dx, dy, n * channels_, plane_);
  }

  std::vector<std::pair<std::string, std::string>> spec_settings() const override { return {{"output_size", "1"}}; }
  std::string describe() const override { return "output_size=1"; }

 private:
  int64_t channels_ = 0, plane_ = 0;
};

}  // namespace

std::unique_ptr<Layer> make_avgpool2d(const AvgPool2dOptions& options) { return std::make_unique<AvgPool2d>(options); }
std::unique_ptr<Layer> make_global_avgpool() { return std::make_unique<GlobalAvgPool>(); }

}  // namespace bnlab
