// LogSoftmax over the features of each sample (dim=1 for (N, K) input).
#include "bnlab/error.h"
#include "bnlab/layers.h"
#include "kernels/softmax.h"

namespace bnlab {
namespace {

class LogSoftmax final : public Layer {
 public:
  std::string_view type() const override { return "LogSoftmax"; }
  LayerKind kind() const override { return LayerKind::LogSoftmax; }
  Shape setup(const Shape& in) override {
    if (in.size() != 1) fail("LogSoftmax", "input", "expects (classes) per sample, got " + to_string(in));
    classes_ = in[0];
    return in;
  }
  void forward(float* y, const float* x, int64_t n, const RunContext&) override {
    kernels::log_softmax_forward(y, x, n, classes_);
  }
  void backward(float* dx, const float* dy, const float*, const float* y, int64_t n) override {
    if (dx) kernels::log_softmax_backward(dx, dy, y, n, classes_);
  }

 private:
  int64_t classes_ = 0;
};

}  // namespace

std::unique_ptr<Layer> make_log_softmax() { return std::make_unique<LogSoftmax>(); }

}  // namespace bnlab
