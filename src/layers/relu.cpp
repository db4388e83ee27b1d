// ReLU: y = max(x, 0); backward masks with the output, as PyTorch's threshold_backward.
#include "bnlab/layers.h"
#include "kernels/elementwise.h"

namespace bnlab {
namespace {

class ReLU final : public Layer {
 public:
  std::string_view type() const override { return "ReLU"; }
  LayerKind kind() const override { return LayerKind::ReLU; }
  Shape setup(const Shape& in) override {
    size_ = numel(in);
    return in;
  }
  void forward(float* y, const float* x, int64_t n, const RunContext&) override {
    kernels::relu_forward(y, x, n * size_);
  }
  void backward(float* dx, const float* dy, const float*, const float* y, int64_t n) override {
    if (dx) kernels::relu_backward(dx, dy, y, n * size_);
  }

 private:
  int64_t size_ = 0;  // per sample
};

}  // namespace

std::unique_ptr<Layer> make_relu() { return std::make_unique<ReLU>(); }

}  // namespace bnlab
