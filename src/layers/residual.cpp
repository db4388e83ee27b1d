// Residual: y = f(x) + skip(x), with f the block's own layers run in order (He et al. 2016,
// "Deep Residual Learning"), and skip the identity, He's zero-padding shortcut (option A) or the
// block's shortcut layers (Shortcut in layers.h). Backward: dx = J_f(x)^T dy + J_skip(x)^T dy, each
// chain's backward run in reverse order as Network does. The block owns its layers, their
// activation buffers (reserved in reserve(), never in forward) and two ping-pong gradient
// buffers. Its tensors are its layers' under "<layer>.<tensor>", so the network names them
// "<block>.<layer>.<tensor>" as PyTorch names the parameters of an nn.Sequential held by a
// module attribute ("block.shortcut.0.weight" for the shortcut's unnamed layers).
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
  Residual(std::vector<NamedLayer> body, Shortcut skip, std::vector<NamedLayer> shortcut)
      : layers_(std::move(body)), body_count_(layers_.size()), skip_(skip) {
    if (layers_.empty()) fail("Residual", "body", "a residual block needs at least one layer");
    if (!shortcut.empty() && skip_ == Shortcut::ZeroPad) fail("Residual", "shortcut", "pad and shortcut layers exclude each other");
    if (!shortcut.empty()) skip_ = Shortcut::Layers;
    if (skip_ == Shortcut::Layers && shortcut.empty()) fail("Residual", "shortcut", "has no layers");
    for (NamedLayer& entry : shortcut) layers_.push_back(std::move(entry));
  }

  std::string_view type() const override { return "Residual"; }
  LayerKind kind() const override { return LayerKind::Residual; }

  Shape setup(const Shape& in) override {
    shapes_ = {in};
    counts_.clear();
    for (size_t i = 0; i < layers_.size(); ++i) {
      // the shortcut's chain starts again from the block's input
      const Shape& from = i == body_count_ ? in : shapes_.back();
      shapes_.push_back(layers_[i].layer->setup(from));
      counts_.push_back(layers_[i].layer->declare().size());
    }
    const Shape& out = shapes_[body_count_];
    in_size_ = numel(in);
    out_size_ = numel(out);
    switch (skip_) {
      case Shortcut::Identity:
        if (out != in) {
          fail("Residual", "output", "the block turns " + to_string(in) + " into " + to_string(out) +
                                         "; x + f(x) needs f to keep the shape (or a shortcut: shortcut=pad, or "
                                         "shortcut layers)");
        }
        break;
      case Shortcut::ZeroPad: setup_zero_pad(in, out); break;
      case Shortcut::Layers:
        if (shapes_.back() != out) {
          fail("Residual", "shortcut", "turns " + to_string(in) + " into " + to_string(shapes_.back()) +
                                           ", but the body's output is " + to_string(out));
        }
        break;
    }
    return out;
  }

  std::vector<TensorDecl> declare() const override {
    std::vector<TensorDecl> decls;
    for (const NamedLayer& entry : layers_) {
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
    for (size_t i = 0; i < layers_.size(); ++i) {
      layers_[i].layer->bind(slots.subspan(offset, counts_[i]));
      offset += counts_[i];
    }
  }

  void reset_state() override {
    for (NamedLayer& entry : layers_) entry.layer->reset_state();
  }

  void reserve(int64_t max_batch, int threads) override {
    int64_t largest = max_batch * in_size_;
    outputs_.resize(layers_.size());
    for (size_t i = 0; i < layers_.size(); ++i) {
      layers_[i].layer->reserve(max_batch, threads);
      const int64_t size = max_batch * numel(shapes_[i + 1]);
      outputs_[i].assign(static_cast<size_t>(size), 0.0f);
      largest = std::max(largest, size);
    }
    grad_a_.assign(static_cast<size_t>(largest), 0.0f);
    grad_b_.assign(static_cast<size_t>(largest), 0.0f);
    skip_grad_.assign(skip_ == Shortcut::Layers ? static_cast<size_t>(max_batch * in_size_) : 0, 0.0f);
  }

  bool eval_mixes_samples() const override {
    return std::any_of(layers_.begin(), layers_.end(), [](const NamedLayer& e) { return e.layer->eval_mixes_samples(); });
  }

  void set_communicator(Communicator* comm) override {
    for (NamedLayer& entry : layers_) entry.layer->set_communicator(comm);
  }

  // y (n, out) = f(x) + skip(x); each inner layer writes its own buffer (views copy, see Flatten).
  void forward(float* y, const float* x, int64_t n, const RunContext& ctx) override {
    const float* body = run_chain(0, body_count_, x, n, ctx);
    const int64_t count = n * out_size_;
    switch (skip_) {
      case Shortcut::Identity:
#pragma omp parallel for schedule(static)
        for (int64_t j = 0; j < count; ++j) y[j] = x[j] + body[j];
        break;
      case Shortcut::ZeroPad: zero_pad_forward(y, x, body, n); break;
      case Shortcut::Layers: {
        const float* skip = run_chain(body_count_, layers_.size(), x, n, ctx);
#pragma omp parallel for schedule(static)
        for (int64_t j = 0; j < count; ++j) y[j] = body[j] + skip[j];
        break;
      }
    }
  }

  // dx (n, in) = J_f^T dy + J_skip^T dy; parameter gradients accumulate in the inner layers.
  void backward(float* dx, const float* dy, const float* x, const float*, int64_t n) override {
    back_chain(0, body_count_, dx, dy, x, n);
    if (skip_ == Shortcut::Layers) {
      // the shortcut's parameters need their gradients even when the network wants no dx
      back_chain(body_count_, layers_.size(), dx ? skip_grad_.data() : nullptr, dy, x, n);
    }
    if (!dx) return;  // first layer of the network: only the parameter gradients were wanted
    const int64_t count = n * in_size_;
    switch (skip_) {
      case Shortcut::Identity:
#pragma omp parallel for schedule(static)
        for (int64_t j = 0; j < count; ++j) dx[j] += dy[j];
        break;
      case Shortcut::ZeroPad: zero_pad_backward(dx, dy, n); break;
      case Shortcut::Layers:
#pragma omp parallel for schedule(static)
        for (int64_t j = 0; j < count; ++j) dx[j] += skip_grad_[j];
        break;
    }
  }

  std::span<const NamedLayer> children() const override { return layers_; }
  size_t shortcut_begin() const override { return body_count_; }

  std::vector<std::pair<std::string, std::string>> spec_settings() const override {
    if (skip_ == Shortcut::ZeroPad) return {{"shortcut", "pad"}};
    return {};
  }

  int64_t macs_per_sample() const override {
    int64_t total = 0;
    for (const NamedLayer& entry : layers_) total += entry.layer->macs_per_sample();
    return total;
  }

  std::string describe() const override {
    auto names = [&](size_t begin, size_t end) {
      std::string s;
      for (size_t i = begin; i < end; ++i) s += (s.empty() ? "" : ", ") + std::string(layers_[i].layer->type());
      return s;
    };
    const std::string f = "f = " + names(0, body_count_);
    switch (skip_) {
      case Shortcut::Identity: return "x + f(x), " + f;
      case Shortcut::ZeroPad: return "f(x) + pad(x[::" + std::to_string(stride_) + "]), " + f;
      case Shortcut::Layers: return "f(x) + s(x), " + f + "; s = " + names(body_count_, layers_.size());
    }
    return f;
  }

 private:
  // He's option A: f strides by s and widens from C to C' >= C channels.
  void setup_zero_pad(const Shape& in, const Shape& out) {
    if (in.size() != 3 || out.size() != 3) {
      fail("Residual", "shortcut", "pad needs (C, H, W) in and out, got " + to_string(in) + " -> " + to_string(out));
    }
    const int64_t s = (in[1] + out[1] - 1) / out[1];
    if (out[0] < in[0] || (in[1] + s - 1) / s != out[1] || (in[2] + s - 1) / s != out[2]) {
      fail("Residual", "shortcut", "pad takes x[:, :, ::s, ::s] with zero channels added, which cannot turn " +
                                       to_string(in) + " into the body's " + to_string(out));
    }
    stride_ = s;
    in_channels_ = in[0];
    in_h_ = in[1];
    in_w_ = in[2];
    out_channels_ = out[0];
    out_h_ = out[1];
    out_w_ = out[2];
  }

  void zero_pad_forward(float* y, const float* x, const float* body, int64_t n) const {
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t s = 0; s < n; ++s) {
      for (int64_t c = 0; c < out_channels_; ++c) {
        float* out = y + (s * out_channels_ + c) * out_h_ * out_w_;
        const float* f = body + (s * out_channels_ + c) * out_h_ * out_w_;
        if (c >= in_channels_) {
          std::copy_n(f, out_h_ * out_w_, out);
          continue;
        }
        const float* in = x + (s * in_channels_ + c) * in_h_ * in_w_;
        for (int64_t i = 0; i < out_h_; ++i)
          for (int64_t j = 0; j < out_w_; ++j) out[i * out_w_ + j] = f[i * out_w_ + j] + in[i * stride_ * in_w_ + j * stride_];
      }
    }
  }

  // dx (already the body's) gains dy at the sampled positions of x's channels.
  void zero_pad_backward(float* dx, const float* dy, int64_t n) const {
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t s = 0; s < n; ++s) {
      for (int64_t c = 0; c < in_channels_; ++c) {
        float* in = dx + (s * in_channels_ + c) * in_h_ * in_w_;
        const float* g = dy + (s * out_channels_ + c) * out_h_ * out_w_;
        for (int64_t i = 0; i < out_h_; ++i)
          for (int64_t j = 0; j < out_w_; ++j) in[i * stride_ * in_w_ + j * stride_] += g[i * out_w_ + j];
      }
    }
  }

  // Runs layers_[begin, end) on x; returns the last one's output.
  const float* run_chain(size_t begin, size_t end, const float* x, int64_t n, const RunContext& ctx) {
    const float* in = x;
    for (size_t i = begin; i < end; ++i) {
      RunContext inner = ctx;
      inner.random_key = derive_key(ctx.random_key, i);  // each Dropout its own mask
      layers_[i].layer->forward(outputs_[i].data(), in, n, inner);
      in = outputs_[i].data();
    }
    return in;
  }

  // Backward through layers_[begin, end) from dy to dx (null: parameter gradients only).
  void back_chain(size_t begin, size_t end, float* dx, const float* dy, const float* x, int64_t n) {
    const float* grad = dy;
    for (size_t i = end; i-- > begin;) {
      const float* in = i == begin ? x : outputs_[i - 1].data();
      float* target = i == begin ? dx : grad == grad_a_.data() ? grad_b_.data() : grad_a_.data();
      layers_[i].layer->backward(target, grad, in, outputs_[i].data(), n);
      grad = target;
    }
  }

  std::vector<NamedLayer> layers_;  // the body, then the shortcut's layers
  size_t body_count_;
  Shortcut skip_;
  std::vector<Shape> shapes_;              // shapes_[0] input, shapes_[i+1] output of layers_[i]
  std::vector<size_t> counts_;             // tensors declared by each inner layer
  int64_t in_size_ = 0, out_size_ = 0;     // values per sample
  int64_t stride_ = 1, in_channels_ = 0, in_h_ = 0, in_w_ = 0, out_channels_ = 0, out_h_ = 0, out_w_ = 0;  // ZeroPad
  std::vector<AlignedVector<float>> outputs_;  // (max_batch, shapes_[i+1]) per inner layer
  AlignedVector<float> grad_a_, grad_b_;     // ping-pong inner activation gradients
  AlignedVector<float> skip_grad_;           // the shortcut layers' dx (Shortcut::Layers)
};

}  // namespace

std::unique_ptr<Layer> make_residual(std::vector<NamedLayer> body, Shortcut skip, std::vector<NamedLayer> shortcut) {
  return std::make_unique<Residual>(std::move(body), skip, std::move(shortcut));
}

}  // namespace bnlab
