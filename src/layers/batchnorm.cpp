// BatchNorm1d / BatchNorm2d with PyTorch's semantics (torch.nn.modules.batchnorm, 1.13):
// - training, or eval without tracked statistics: normalize with the batch mean and the biased
//   batch variance; training with tracked statistics also updates running_mean / running_var
//   (unbiased variance) with `momentum`, or with 1/num_batches_tracked when momentum is none;
// - eval with tracked statistics: normalize with running_mean / running_var.
// The arithmetic is in kernels/batchnorm.h; this file keeps the state and the mode logic.
#include <string>
#include <vector>

#include "bnlab/error.h"
#include "bnlab/layers.h"
#include "kernels/batchnorm.h"

namespace bnlab {
namespace {

class BatchNorm final : public Layer {
 public:
  BatchNorm(BatchNormKind kind, const BatchNormOptions& o) : kind_(kind), options_(o) {}

  std::string_view type() const override {
    return kind_ == BatchNormKind::TwoD ? "BatchNorm2d" : "BatchNorm1d";
  }

  Shape setup(const Shape& in) override {
    if (kind_ == BatchNormKind::TwoD && in.size() != 3) {
      fail("BatchNorm2d", "input", "expects (C, H, W) per sample, got " + to_string(in));
    }
    if (kind_ == BatchNormKind::OneD && in.size() != 1 && in.size() != 2) {
      fail("BatchNorm1d", "input", "expects (C) or (C, L) per sample, got " + to_string(in));
    }
    if (!(options_.eps > 0)) fail(type(), "eps", "must be positive");
    if (options_.momentum && !(*options_.momentum >= 0 && *options_.momentum <= 1)) {
      fail(type(), "momentum", "must be in [0, 1] or none");
    }
    channels_ = in[0];
    spatial_ = numel(in) / channels_;
    input_shape_ = in;
    mean_.assign(channels_, 0.0f);
    invstd_.assign(channels_, 0.0f);
    sum_dy_.assign(channels_, 0.0);
    sum_dy_xmu_.assign(channels_, 0.0);
    var_sum_.assign(channels_, 0.0f);
    return in;
  }

  std::vector<TensorDecl> declare() const override {
    std::vector<TensorDecl> decls;
    if (options_.affine) {
      decls.push_back({"weight", {channels_}, Role::Parameter, Init::Ones});
      decls.push_back({"bias", {channels_}, Role::Parameter, Init::Zeros});
    }
    if (options_.track_running_stats) {
      decls.push_back({"running_mean", {channels_}, Role::Buffer, Init::Zeros});
      decls.push_back({"running_var", {channels_}, Role::Buffer, Init::Ones});
      decls.push_back({"num_batches_tracked", {}, Role::Counter, Init::Zeros});
    }
    return decls;
  }

  void bind(std::span<const TensorSlot> slots) override {
    size_t i = 0;
    if (options_.affine) {
      weight_ = slots[i++];
      bias_ = slots[i++];
    }
    if (options_.track_running_stats) {
      running_mean_ = slots[i++];
      running_var_ = slots[i++];
      num_batches_tracked_ = slots[i++];
    }
  }

  void forward(float* y, const float* x, int64_t n, const RunContext& ctx) override {
    batch_stats_ = ctx.mode == Mode::Train || !options_.track_running_stats;
    if (batch_stats_) {
      const int64_t count = n * spatial_;
      if (ctx.mode == Mode::Train && count <= 1) {
        Shape full = input_shape_;
        full.insert(full.begin(), n);
        fail(type(), "input",
             "expected more than 1 value per channel when training, got input size " +
                 to_string(full));
      }
      kernels::bn_stats(mean_.data(), var_sum_.data(), x, n, channels_, spatial_);
      kernels::bn_invstd_from_var_sum(invstd_.data(), var_sum_.data(), count, options_.eps,
                                      channels_);
      if (ctx.mode == Mode::Train && options_.track_running_stats) update_running(count);
    } else {
      std::copy(running_mean_.data, running_mean_.data + channels_, mean_.begin());
      kernels::bn_invstd_from_var(invstd_.data(), running_var_.data, options_.eps, channels_);
    }
    if (fused_relu_) {
      kernels::bn_normalize_relu(y, x, mean_.data(), invstd_.data(), weight_.data, bias_.data, n,
                                 channels_, spatial_);
    } else {
      kernels::bn_normalize(y, x, mean_.data(), invstd_.data(), weight_.data, bias_.data, n,
                            channels_, spatial_);
    }
  }

  bool fuse_relu() override {
    fused_relu_ = true;
    return true;
  }

  void backward(float* dx, const float* dy, const float* x, const float* y, int64_t n) override {
    const float* relu_out = fused_relu_ ? y : nullptr;  // y is after the fused ReLU
    kernels::bn_backward_reduce(sum_dy_.data(), sum_dy_xmu_.data(), dy, x, mean_.data(), relu_out,
                                n, channels_, spatial_);
    if (dx && batch_stats_) {
      kernels::bn_backward_input_train(dx, dy, x, mean_.data(), invstd_.data(), weight_.data,
                                       relu_out, sum_dy_.data(), sum_dy_xmu_.data(), n * spatial_,
                                       n, channels_, spatial_);
    } else if (dx) {
      kernels::bn_backward_input_eval(dx, dy, invstd_.data(), weight_.data, relu_out, n, channels_,
                                      spatial_);
    }
    kernels::bn_backward_params(weight_.grad, bias_.grad, sum_dy_.data(), sum_dy_xmu_.data(),
                                invstd_.data(), channels_);
  }

  void reset_state() override {
    if (!options_.track_running_stats) return;
    std::fill(running_mean_.data, running_mean_.data + channels_, 0.0f);
    std::fill(running_var_.data, running_var_.data + channels_, 1.0f);
    *num_batches_tracked_.counter = 0;
  }

  int64_t macs_per_sample() const override { return channels_ * spatial_; }

  std::string describe() const override {
    std::string s = std::to_string(channels_);
    if (options_.eps != 1e-5) s += ", eps=" + std::to_string(options_.eps);
    if (!options_.momentum) s += ", momentum=None";
    else if (*options_.momentum != 0.1) s += ", momentum=" + std::to_string(*options_.momentum);
    if (!options_.affine) s += ", affine=False";
    if (!options_.track_running_stats) s += ", track_running_stats=False";
    return s;
  }

 private:
  void update_running(int64_t count) {
    *num_batches_tracked_.counter += 1;
    const double factor =
        options_.momentum ? *options_.momentum : 1.0 / static_cast<double>(*num_batches_tracked_.counter);
    kernels::bn_update_running(running_mean_.data, running_var_.data, mean_.data(), var_sum_.data(),
                               count, factor, channels_);
  }

  BatchNormKind kind_;
  BatchNormOptions options_;
  int64_t channels_ = 0, spatial_ = 0;
  Shape input_shape_;
  TensorSlot weight_, bias_, running_mean_, running_var_, num_batches_tracked_;
  bool batch_stats_ = true;  // which statistics the last forward normalized with
  bool fused_relu_ = false;  // the following ReLU is applied here (Network::fuse_batchnorm_relu)
  // Saved by forward for backward, per channel (C).
  std::vector<float> mean_, invstd_, var_sum_;
  std::vector<double> sum_dy_, sum_dy_xmu_;
};

}  // namespace

std::unique_ptr<Layer> make_batchnorm(BatchNormKind kind, const BatchNormOptions& options) {
  return std::make_unique<BatchNorm>(kind, options);
}

}  // namespace bnlab
