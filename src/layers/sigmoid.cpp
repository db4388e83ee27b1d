// Sigmoid: y = 1 / (1 + exp(-x)), as PyTorch's nn.Sigmoid; backward from the saved output.
// The paper's MNIST experiment (Ioffe & Szegedy 2015, sec. 4.1) uses it. Kernels: kernels/sigmoid.h.
#include "bnlab/layers.h"
#include "kernels/sigmoid.h"

namespace bnlab {
namespace {

class Sigmoid final : public Layer {
 public:
  std::string_view type() const override { return "Sigmoid"; }
  LayerKind kind() const override { return LayerKind::Sigmoid; }
  Shape setup(const Shape& in) override {
    size_ = numel(in);
    return in;
  }
  void forward(float* y, const float* x, int64_t n, const RunContext&) override {
    kernels::sigmoid_forward(y, x, n * size_);
  }
  void backward(float* dx, const float* dy, const float*, const float* y, int64_t n) override {
    if (dx) kernels::sigmoid_backward(dx, dy, y, n * size_);
  }

 private:
  int64_t size_ = 0;  // per sample
};

}  // namespace

std::unique_ptr<Layer> make_sigmoid() { return std::make_unique<Sigmoid>(); }

}  // namespace bnlab
