// Flatten: (C, H, W) -> (C*H*W) per sample. A view: the network aliases input and output.
#include <cstring>

#include "bnlab/layers.h"

namespace bnlab {
namespace {

class Flatten final : public Layer {
 public:
  std::string_view type() const override { return "Flatten"; }
  LayerKind kind() const override { return LayerKind::Flatten; }
  Shape setup(const Shape& in) override {
    size_ = numel(in);
    return {size_};
  }
  bool is_view() const override { return true; }
  // Called only when the caller does not alias (for example in tests): a plain copy.
  void forward(float* y, const float* x, int64_t n, const RunContext&) override {
    if (y != x) std::memcpy(y, x, static_cast<size_t>(n * size_) * sizeof(float));
  }
  void backward(float* dx, const float* dy, const float*, const float*, int64_t n) override {
    if (dx && dx != dy) std::memcpy(dx, dy, static_cast<size_t>(n * size_) * sizeof(float));
  }

 private:
  int64_t size_ = 0;
};

}  // namespace

std::unique_ptr<Layer> make_flatten() { return std::make_unique<Flatten>(); }

}  // namespace bnlab
