// Residual: y = x + f(x), with f the block's own layers run in order (the identity shortcut of
// He et al. 2016, "Deep Residual Learning"). Backward: dx = dy + J_f(x)^T dy, f's backward run in
// reverse order as Network does. The block owns its layers, their activation buffers (reserved
// in reserve(), never in forward) and two ping-pong gradient buffers. Its tensors are its layers'
// under "<layer>.<tensor>", so the network names them "<block>.<layer>.<tensor>" as PyTorch names
// the parameters of an nn.Sequential held by a module attribute.
#include <algorithm>
#include <string>
#include <vector>

#include "bnlab/error.h"
#include "bnlab/layers.h"
#include "bnlab/rng.h"

namespace bnlab {
namespace {

class Residual final : public Layer {
 public:
  explicit Residual(std::vector<NamedLayer> body) : body_(std::move(body)) {
    if (body_.empty()) fail("Residual", "body", "a residual block needs at least one layer");
  }

  std::string_view type() const override { return "Residual"; }
  LayerKind kind() const override { return LayerKind::Residual; }

  Shape setup(const Shape& in) override {
    shapes_ = {in};
    counts_.clear();
    for (NamedLayer& entry : body_) {
      shapes_.push_back(entry.layer->setup(shapes_.back()));
      counts_.push_back(entry.layer->declare().size());
    }
    if (shapes_.back() != in) {
      fail("Residual", "output", "the block turns " + to_string(in) + " into " + to_string(shapes_.back()) +
                                     "; x + f(x) needs f to keep the shape");
    }
    size_ = numel(in);
    return in;
  }

  std::vector<TensorDecl> declare() const override {
    std::vector<TensorDecl> decls;
    for (const NamedLayer& entry : body_) {
      std::vector<TensorDecl> inner = entry.layer->declare();
      for (TensorDecl& d : inner) {
        d.name = entry.name + "." + d.name;
        decls.push_back(std::move(d));
      }
    }
    return decls;
  }

  void bind(std::span<const TensorSlot> slots) override {
    size_t offset = 0;
    for (size_t i = 0; i < body_.size(); ++i) {
      body_[i].layer->bind(slots.subspan(offset, counts_[i]));
      offset += counts_[i];
    }
  }

  void reset_state() override {
    for (NamedLayer& entry : body_) entry.layer->reset_state();
  }

  void reserve(int64_t max_batch, int threads) override {
    int64_t largest = 0;
    outputs_.resize(body_.size());
    for (size_t i = 0; i < body_.size(); ++i) {
      body_[i].layer->reserve(max_batch, threads);
      const int64_t size = max_batch * numel(shapes_[i + 1]);
      outputs_[i].assign(static_cast<size_t>(size), 0.0f);
      largest = std::max(largest, size);
    }
    grad_a_.assign(static_cast<size_t>(largest), 0.0f);
    grad_b_.assign(static_cast<size_t>(largest), 0.0f);
  }

  bool eval_mixes_samples() const override {
    return std::any_of(body_.begin(), body_.end(), [](const NamedLayer& e) { return e.layer->eval_mixes_samples(); });
  }

  void set_communicator(Communicator* comm) override {
    for (NamedLayer& entry : body_) entry.layer->set_communicator(comm);
  }

  // y (n, size) = x + f(x); each inner layer writes its own buffer (views copy, see Flatten).
  void forward(float* y, const float* x, int64_t n, const RunContext& ctx) override {
    const float* in = x;
    for (size_t i = 0; i < body_.size(); ++i) {
      RunContext inner = ctx;
      inner.random_key = derive_key(ctx.random_key, i);  // each Dropout its own mask
      body_[i].layer->forward(outputs_[i].data(), in, n, inner);
      in = outputs_[i].data();
    }
    const int64_t count = n * size_;
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < count; ++j) y[j] = x[j] + in[j];
  }

  // dx (n, size) = dy + (df/dx)^T dy; parameter gradients accumulate in the inner layers.
  void backward(float* dx, const float* dy, const float* x, const float*, int64_t n) override {
    const float* grad = dy;
    for (size_t i = body_.size(); i-- > 0;) {
      const float* in = i == 0 ? x : outputs_[i - 1].data();
      float* target = i == 0 ? dx : grad == grad_a_.data() ? grad_b_.data() : grad_a_.data();
      body_[i].layer->backward(target, grad, in, outputs_[i].data(), n);
      grad = target;
    }
    if (!dx) return;  // first layer of the network: only the parameter gradients were wanted
    const int64_t count = n * size_;
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < count; ++j) dx[j] += dy[j];
  }

  std::span<const NamedLayer> children() const override { return body_; }

  int64_t macs_per_sample() const override {
    int64_t total = 0;
    for (const NamedLayer& entry : body_) total += entry.layer->macs_per_sample();
    return total;
  }

  std::string describe() const override {
    std::string names;
    for (const NamedLayer& entry : body_) names += (names.empty() ? "" : ", ") + std::string(entry.layer->type());
    return "x + f(x), f = " + names;
  }

 private:
  std::vector<NamedLayer> body_;
  std::vector<Shape> shapes_;              // shapes_[0] input, shapes_[i+1] output of body_[i]
  std::vector<size_t> counts_;             // tensors declared by each inner layer
  int64_t size_ = 0;                       // values per sample
  std::vector<AlignedVector<float>> outputs_;  // (max_batch, shapes_[i+1]) per inner layer
  AlignedVector<float> grad_a_, grad_b_;     // ping-pong inner activation gradients
};

}  // namespace

std::unique_ptr<Layer> make_residual(std::vector<NamedLayer> body) {
  return std::make_unique<Residual>(std::move(body));
}

}  // namespace bnlab
