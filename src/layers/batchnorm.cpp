// BatchNorm1d / BatchNorm2d with PyTorch's semantics (torch.nn.modules.batchnorm, 1.13):
// - training, or eval without tracked statistics: normalize with the batch mean and the biased
//   batch variance; training with tracked statistics also updates running_mean / running_var
//   (unbiased variance) with `momentum`, or with 1/num_batches_tracked when momentum is none;
// - eval with tracked statistics: normalize with running_mean / running_var.
// The arithmetic is in kernels/batchnorm/batchnorm.h; this file keeps the state and the mode logic.
#include <string>
#include <vector>

#include "bnlab/comm.h"
#include "bnlab/error.h"
#include "bnlab/layers.h"
#include "kernels/batchnorm/batchnorm.h"
#include "layers/layer_kinds.h"
#include "layers/norm_tensors.h"
#include "layers/spec_values.h"

namespace bnlab {
namespace {

class BatchNorm final : public BatchNormLayer {
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
    spatial_ = checked_numel(in, type(), "input") / in[0];
    channels_ = in[0];
    input_shape_ = in;
    return in;
  }

  // Per-channel scratch (allocated here, not in setup, so that building a network allocates
  // only its parameters and buffers).
  void reserve(int64_t /*max_batch*/, int /*threads*/) override {
    mean_.assign(channels_, 0.0f);
    invstd_.assign(channels_, 0.0f);
    backward_sums_.assign(2 * channels_, 0.0);
    global_sums_.assign(channels_ + 1, 0.0);
    var_sum_.assign(channels_, 0.0f);
  }

  std::vector<TensorDecl> declare() const override {
    return NormTensors::declare({channels_}, channels_, options_.affine, options_.track_running_stats);
  }

  void bind(std::span<const TensorSlot> slots) override {
    t_.bind(slots, options_.affine, options_.track_running_stats);
  }

  const BatchNormOptions& options() const override { return options_; }

  void forward(float* y, const float* x, int64_t n, const RunContext& ctx) override { run_forward(y, x, n, ctx, false); }
  void forward_relu(float* y, const float* x, int64_t n, const RunContext& ctx) override { run_forward(y, x, n, ctx, true); }
  void backward(float* dx, const float* dy, const float* x, const float* /*y*/, int64_t n) override {
    run_backward(dx, dy, x, nullptr, n);
  }
  // The mask of the fused ReLU is its output's: dy passes where y > 0.
  void backward_relu(float* dx, const float* dy, const float* x, const float* y, int64_t n) override {
    run_backward(dx, dy, x, y, n);
  }

  void eval_affine(float* scale, float* shift) const override {
    // invstd first into `scale`, which bn_affine then overwrites channel by channel
    kernels::bn_invstd_from_var(scale, t_.running_var.data, options_.eps, channels_);
    kernels::bn_affine(scale, shift, t_.running_mean.data, scale, t_.weight.data, t_.bias.data, channels_);
  }

 private:
  void run_forward(float* y, const float* x, int64_t n, const RunContext& ctx, bool relu) {
    batch_stats_ = ctx.mode == Mode::Train || !options_.track_running_stats;
    if (batch_stats_) {
      synced_ = comm_ && ctx.mode == Mode::Train;
      count_ = synced_ ? global_statistics(x, n) : n * spatial_;
      if (ctx.mode == Mode::Train && count_ <= 1) {
        Shape full = input_shape_;
        full.insert(full.begin(), n);
        fail(type(), "input",
             "expected more than 1 value per channel when training, got input size " +
                 to_string(full));
      }
      if (!synced_) {  // one process: statistics and normalization fused, channel by channel
        kernels::bn_forward_train(y, mean_.data(), var_sum_.data(), invstd_.data(), x, t_.weight.data, t_.bias.data,
                                  options_.eps, relu, n, channels_, spatial_);
        if (ctx.mode == Mode::Train && options_.track_running_stats) update_running(count_);
        return;
      }
      kernels::bn_invstd_from_var_sum(invstd_.data(), var_sum_.data(), count_, options_.eps, channels_);
      if (ctx.mode == Mode::Train && options_.track_running_stats) update_running(count_);
    } else {
      std::copy(t_.running_mean.data, t_.running_mean.data + channels_, mean_.begin());
      kernels::bn_invstd_from_var(invstd_.data(), t_.running_var.data, options_.eps, channels_);
    }
    if (relu) {
      kernels::bn_normalize_relu(y, x, mean_.data(), invstd_.data(), t_.weight.data, t_.bias.data, n,
                                 channels_, spatial_);
    } else {
      kernels::bn_normalize(y, x, mean_.data(), invstd_.data(), t_.weight.data, t_.bias.data, n,
                            channels_, spatial_);
    }
  }

  // relu_out: the output of a fused ReLU, whose mask dy passes through first (null: none).
  void run_backward(float* dx, const float* dy, const float* x, const float* relu_out, int64_t n) {
    double* sum_dy = backward_sums_.data();
    double* sum_dy_xmu = backward_sums_.data() + channels_;
    if (dx && batch_stats_ && !synced_) {  // one process: the reductions and dx fused, per channel
      kernels::bn_backward_train(dx, sum_dy, sum_dy_xmu, dy, x, mean_.data(), invstd_.data(), t_.weight.data,
                                 relu_out, n, channels_, spatial_);
      kernels::bn_backward_params(t_.weight.grad, t_.bias.grad, sum_dy, sum_dy_xmu, invstd_.data(), channels_);
      return;
    }
    kernels::bn_backward_reduce(sum_dy, sum_dy_xmu, dy, x, mean_.data(), relu_out, n, channels_, spatial_);
    // Parameter gradients from this process's sums: averaging them across processes, as the
    // gradient all-reduce does, gives the gradient of the global batch (PyTorch's SyncBatchNorm).
    kernels::bn_backward_params(t_.weight.grad, t_.bias.grad, sum_dy, sum_dy_xmu, invstd_.data(), channels_);
    if (!dx) return;
    if (batch_stats_) {
      comm_->allreduce_sum(backward_sums_.data(), 2 * channels_);  // synced: the global sums
      kernels::bn_backward_input_train(dx, dy, x, mean_.data(), invstd_.data(), t_.weight.data,
                                       relu_out, sum_dy, sum_dy_xmu, count_, n, channels_, spatial_);
    } else {
      kernels::bn_backward_input_eval(dx, dy, invstd_.data(), t_.weight.data, relu_out, n, channels_,
                                      spatial_);
    }
  }


 public:
  void set_communicator(Communicator* comm) override { comm_ = comm; }

  bool eval_mixes_samples() const override { return !options_.track_running_stats; }

  void reset_state() override {
    if (options_.track_running_stats) t_.reset_running(channels_);
  }

  int64_t macs_per_sample() const override { return channels_ * spatial_; }

  std::vector<std::pair<std::string, std::string>> spec_settings() const override {
    std::vector<std::pair<std::string, std::string>> s;
    if (options_.eps != 1e-5) s.emplace_back("eps", spec_value(options_.eps));
    if (!options_.momentum) s.emplace_back("momentum", "none");
    else if (*options_.momentum != 0.1) s.emplace_back("momentum", spec_value(*options_.momentum));
    if (!options_.affine) s.emplace_back("affine", "false");
    if (!options_.track_running_stats) s.emplace_back("track_running_stats", "false");
    return s;
  }

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
  // Synchronized statistics: the channel sums (and the sample count) of all processes give the
  // global mean, then the squared deviations from it are summed the same way. Returns the global
  // count of values per channel. The arithmetic is bn_stats's, only split by the two sums.
  int64_t global_statistics(const float* x, int64_t n) {
    kernels::bn_channel_sums(global_sums_.data(), x, n, channels_, spatial_);
    global_sums_[channels_] = static_cast<double>(n * spatial_);
    comm_->allreduce_sum(global_sums_.data(), channels_ + 1);
    const double count = global_sums_[channels_];
    for (int64_t c = 0; c < channels_; ++c) mean_[c] = static_cast<float>(global_sums_[c] / count);
    kernels::bn_channel_squared_deviations(global_sums_.data(), x, mean_.data(), n, channels_, spatial_);
    comm_->allreduce_sum(global_sums_.data(), channels_);
    for (int64_t c = 0; c < channels_; ++c) var_sum_[c] = static_cast<float>(global_sums_[c]);
    return static_cast<int64_t>(count);
  }

  void update_running(int64_t count) {
    *t_.num_batches_tracked.counter += 1;
    const double factor =
        options_.momentum ? *options_.momentum : 1.0 / static_cast<double>(*t_.num_batches_tracked.counter);
    kernels::bn_update_running(t_.running_mean.data, t_.running_var.data, mean_.data(), var_sum_.data(),
                               count, factor, channels_);
  }

  BatchNormKind kind_;
  BatchNormOptions options_;
  int64_t channels_ = 0, spatial_ = 0;
  Shape input_shape_;
  NormTensors t_;
  bool batch_stats_ = true;  // which statistics the last forward normalized with
  Communicator* comm_ = nullptr;  // synchronized batch norm when set
  bool synced_ = false;           // the last forward used the global batch
  int64_t count_ = 0;             // values per channel behind the last batch statistics
  // Saved by forward for backward, per channel (C).
  std::vector<float> mean_, invstd_, var_sum_;
  std::vector<double> backward_sums_;  // (2C): sum dy, then sum dy * (x - mean)
  std::vector<double> global_sums_;    // (C + 1): scratch of the synchronized statistics

  // For the recalibration (BatchNormLayer::set_momentum); setup checked the original value.
 public:
  void set_momentum(std::optional<double> momentum) override { options_.momentum = momentum; }
};

}  // namespace

std::unique_ptr<Layer> make_batchnorm(BatchNormKind kind, const BatchNormOptions& options) {
  return std::make_unique<BatchNorm>(kind, options);
}

}  // namespace bnlab
