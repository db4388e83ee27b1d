// Tanh: y = tanh(x), as PyTorch's nn.Tanh; backward from the saved output (kernels/sigmoid.h).
#include "bnlab/layers.h"
#include "kernels/sigmoid.h"

namespace bnlab {
namespace {

class Tanh final : public Layer {
 public:
  std::string_view type() const override { return "Tanh"; }
  LayerKind kind() const override { return LayerKind::Tanh; }
  Shape setup(const Shape& in) override {
    size_ = numel(in);
    return in;
  }
  void forward(float* y, const float* x, int64_t n, const RunContext&) override {
    kernels::tanh_forward(y, x, n * size_);
  }
  void backward(float* dx, const float* dy, const float*, const float* y, int64_t n) override {
    if (dx) kernels::tanh_backward(dx, dy, y, n * size_);
  }

 private:
  int64_t size_ = 0;  // per sample
};

}  // namespace

std::unique_ptr<Layer> make_tanh() { return std::make_unique<Tanh>(); }

}  // namespace bnlab
