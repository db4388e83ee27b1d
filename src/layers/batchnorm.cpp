// BatchNorm1d / BatchNorm2d with PyTorch's semantics (torch.nn.modules.batchnorm, 1.13):
// - training, or eval without tracked statistics: normalize with the batch mean and the biased
//   batch variance; training with tracked statistics also updates running_mean / running_var
//   (unbiased variance) with `momentum`, or with 1/num_batches_tracked when momentum is none;
// - eval with tracked statistics: normalize with running_mean / running_var.
// And the variants of BatchNormOptions (layers.h): ghost batches (virtual_batch), frozen
// statistics (freeze), Batch Renormalization (renorm).
// The arithmetic is in kernels/batchnorm/; this file keeps the state and the mode logic.
#include <algorithm>
#include <string>
#include <vector>

#include "bnlab/comm.h"
#include "bnlab/error.h"
#include "bnlab/layers.h"
#include "kernels/batchnorm/batchnorm.h"
#include "kernels/batchnorm/renorm.h"
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
    check_variant();
    spatial_ = checked_numel(in, type(), "input") / in[0];
    channels_ = in[0];
    input_shape_ = in;
    return in;
  }

  // Per-channel scratch (allocated here, not in setup, so that building a network allocates
  // only its parameters and buffers).
  // Ghost batches keep the statistics of every group of the batch for backward.
  void reserve(int64_t max_batch, int /*threads*/) override {
    const int64_t groups = options_.virtual_batch ? std::max<int64_t>(1, ghost_groups(max_batch)) : 1;
    mean_.assign(groups * channels_, 0.0f);
    invstd_.assign(groups * channels_, 0.0f);
    var_sum_.assign(groups * channels_, 0.0f);
    backward_sums_.assign(2 * channels_, 0.0);
    global_sums_.assign(channels_ + 1, 0.0);
    if (options_.renorm) {
      for (auto* v : {&r_, &d_, &invstd_r_, &weight_r_, &bias_d_}) v->assign(channels_, 0.0f);
    }
  }

  std::vector<TensorDecl> declare() const override {
    const Role affine_role = options_.freeze == BatchNormFreeze::All ? Role::Buffer : Role::Parameter;
    return NormTensors::declare({channels_}, channels_, options_.affine, options_.track_running_stats, affine_role);
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

  bool can_fuse_pool(const RunContext& ctx) const override {
    return kind_ == BatchNormKind::TwoD && ctx.mode == Mode::Train && options_.freeze == BatchNormFreeze::None &&
           !options_.virtual_batch && !options_.renorm && !comm_ && input_shape_[1] >= 2 && input_shape_[2] >= 2 &&
           spatial_ <= kernels::kMaxFusedPoolPlane;
  }
  // run_forward and run_backward on their one-process path, with the pool in the normalization.
  void forward_relu_pool(float* y, int32_t* argmax, const float* x, int64_t n, const RunContext& ctx) override {
    if (!can_fuse_pool(ctx)) fail(type(), "forward", "the fused max-pool needs a plain training batch on one process");
    const FusedPool pool{argmax};
    run_forward(y, x, n, ctx, true, &pool);
  }
  void backward_relu_pool(float* dx, const float* dy, const int32_t* argmax, const float* x, int64_t n) override {
    run_backward(dx, dy, x, nullptr, n, argmax);
  }

  void eval_affine(float* scale, float* shift) const override {
    // invstd first into `scale`, which bn_affine then overwrites channel by channel
    kernels::bn_invstd_from_var(scale, t_.running_var.data, options_.eps, channels_);
    kernels::bn_affine(scale, shift, t_.running_mean.data, scale, t_.weight.data, t_.bias.data, channels_);
  }

 private:
  // The max-pool fused after the ReLU (forward_relu_pool): y is the pool's output.
  struct FusedPool {
    int32_t* argmax;  // may be null
  };

  void run_forward(float* y, const float* x, int64_t n, const RunContext& ctx, bool relu,
                   const FusedPool* pool = nullptr) {
    const bool train = ctx.mode == Mode::Train;
    batch_stats_ = (train || !options_.track_running_stats) && options_.freeze == BatchNormFreeze::None;
    groups_ = 1;
    if (batch_stats_) {
      synced_ = comm_ && train;
      if (train && options_.virtual_batch && n > options_.virtual_batch) return ghost_forward(y, x, n, relu);
      count_ = synced_ ? global_statistics(x, n) : n * spatial_;
      if (train) require_values(count_, n);
      if (train && options_.renorm) return renorm_forward(y, x, n, relu);
      if (!synced_) {  // one process: statistics and normalization fused, channel by channel
        if (pool) {
          kernels::bn_forward_train_relu_pool(y, pool->argmax, mean_.data(), var_sum_.data(), invstd_.data(), x,
                                              t_.weight.data, t_.bias.data, options_.eps, n, channels_,
                                              input_shape_[1], input_shape_[2]);
        } else {
          kernels::bn_forward_train(y, mean_.data(), var_sum_.data(), invstd_.data(), x, t_.weight.data,
                                    t_.bias.data, options_.eps, relu, n, channels_, spatial_);
        }
        if (train && options_.track_running_stats) update_running(count_, 0);
        return;
      }
      kernels::bn_invstd_from_var_sum(invstd_.data(), var_sum_.data(), count_, options_.eps, channels_);
      if (train && options_.track_running_stats) update_running(count_, 0);
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

  // Ghost batches: each group of virtual_batch samples (the last one smaller if the batch is not
  // a multiple) is a BN of its own, its running-statistics update in order.
  void ghost_forward(float* y, const float* x, int64_t n, bool relu) {
    const int64_t vb = options_.virtual_batch, size = channels_ * spatial_;
    groups_ = ghost_groups(n);
    for (int64_t g = 0; g < groups_; ++g) {
      const int64_t rows = std::min(vb, n - g * vb);
      require_values(rows * spatial_, rows);
      const int64_t at = g * channels_;
      kernels::bn_forward_train(y + g * vb * size, mean_.data() + at, var_sum_.data() + at, invstd_.data() + at,
                                x + g * vb * size, t_.weight.data, t_.bias.data, options_.eps, relu, rows, channels_,
                                spatial_);
      if (options_.track_running_stats) update_running(rows * spatial_, at);
    }
  }

  // Batch Renormalization: the batch statistics (mean_, var_sum_, count_) corrected by r and d
  // from the running statistics before this batch's update, then BN's normalization with the
  // corrected coefficients (kernels/batchnorm/renorm.h).
  void renorm_forward(float* y, const float* x, int64_t n, bool relu) {
    if (!synced_) kernels::bn_stats(mean_.data(), var_sum_.data(), x, n, channels_, spatial_);
    kernels::bn_invstd_from_var_sum(invstd_.data(), var_sum_.data(), count_, options_.eps, channels_);
    const int64_t step = *t_.num_batches_tracked.counter;
    kernels::renorm_correction(r_.data(), d_.data(), mean_.data(), var_sum_.data(), count_, t_.running_mean.data,
                               t_.running_var.data, options_.eps, renorm_limit(1.0, options_.renorm->r_max, step),
                               renorm_limit(0.0, options_.renorm->d_max, step), channels_);
    update_running(count_, 0);
    kernels::renorm_coefficients(invstd_r_.data(), weight_r_.data(), bias_d_.data(), invstd_.data(), r_.data(),
                                 d_.data(), t_.weight.data, t_.bias.data, channels_);
    if (relu) {
      kernels::bn_normalize_relu(y, x, mean_.data(), invstd_r_.data(), t_.weight.data, bias_d_.data(), n,
                                 channels_, spatial_);
    } else {
      kernels::bn_normalize(y, x, mean_.data(), invstd_r_.data(), t_.weight.data, bias_d_.data(), n, channels_,
                            spatial_);
    }
  }

  // Ghost batches in n samples, the last one possibly smaller (no overflow for any virtual_batch).
  int64_t ghost_groups(int64_t n) const {
    return n / options_.virtual_batch + (n % options_.virtual_batch != 0);
  }

  // The paper's schedule: `initial` (r_max 1, d_max 0) for the warm-up, then linear to `target`.
  double renorm_limit(double initial, double target, int64_t step) const {
    const BatchRenormOptions& o = *options_.renorm;
    if (step < o.warmup) return initial;
    if (step - o.warmup >= o.ramp) return target;  // not warmup + ramp: both may be huge
    return initial + (target - initial) * static_cast<double>(step - o.warmup) / static_cast<double>(o.ramp);
  }

  // PyTorch's error for a training batch with a single value per channel.
  void require_values(int64_t count, int64_t n) const {
    if (count > 1) return;
    Shape full = input_shape_;
    full.insert(full.begin(), n);
    fail(type(), "input", "expected more than 1 value per channel when training, got input size " + to_string(full));
  }

  // relu_out: the output of a fused ReLU, whose mask dy passes through first (null: none).
  // pool_argmax: with the max-pool fused (backward_relu_pool), dy is the pooled gradient.
  void run_backward(float* dx, const float* dy, const float* x, const float* relu_out, int64_t n,
                    const int32_t* pool_argmax = nullptr) {
    double* sum_dy = backward_sums_.data();
    double* sum_dy_xmu = backward_sums_.data() + channels_;
    if (groups_ > 1) return ghost_backward(dx, dy, x, relu_out, n);
    if (batch_stats_ && options_.renorm) return renorm_backward(dx, dy, x, relu_out, n);
    if (dx && batch_stats_ && !synced_) {  // one process: the reductions and dx fused, per channel
      if (pool_argmax) {
        kernels::bn_backward_train_relu_pool(dx, sum_dy, sum_dy_xmu, dy, pool_argmax, x, mean_.data(), invstd_.data(),
                                             t_.weight.data, t_.bias.data, n, channels_, input_shape_[1],
                                             input_shape_[2]);
      } else {
        kernels::bn_backward_train(dx, sum_dy, sum_dy_xmu, dy, x, mean_.data(), invstd_.data(), t_.weight.data,
                                   t_.bias.data, relu_out != nullptr, n, channels_, spatial_);
      }
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

  void ghost_backward(float* dx, const float* dy, const float* x, const float* relu_out, int64_t n) {
    double* sum_dy = backward_sums_.data();
    double* sum_dy_xmu = backward_sums_.data() + channels_;
    const int64_t vb = options_.virtual_batch, size = channels_ * spatial_;
    for (int64_t g = 0; g < groups_; ++g) {
      const int64_t rows = std::min(vb, n - g * vb), at = g * channels_, off = g * vb * size;
      const float* mask = relu_out ? relu_out + off : nullptr;
      if (dx) {
        kernels::bn_backward_train(dx + off, sum_dy, sum_dy_xmu, dy + off, x + off, mean_.data() + at,
                                   invstd_.data() + at, t_.weight.data, t_.bias.data, mask != nullptr, rows,
                                   channels_, spatial_);
      } else {
        kernels::bn_backward_reduce(sum_dy, sum_dy_xmu, dy + off, x + off, mean_.data() + at, mask, rows, channels_,
                                    spatial_);
      }
      kernels::bn_backward_params(t_.weight.grad, t_.bias.grad, sum_dy, sum_dy_xmu, invstd_.data() + at, channels_);
    }
  }

  // BN's backward with r and d constants: the input gradient of BN with weight * r, the parameter
  // gradients of weight * x_hat (kernels/batchnorm/renorm.h).
  void renorm_backward(float* dx, const float* dy, const float* x, const float* relu_out, int64_t n) {
    double* sum_dy = backward_sums_.data();
    double* sum_dy_xmu = backward_sums_.data() + channels_;
    kernels::bn_backward_reduce(sum_dy, sum_dy_xmu, dy, x, mean_.data(), relu_out, n, channels_, spatial_);
    kernels::renorm_backward_params(t_.weight.grad, t_.bias.grad, sum_dy, sum_dy_xmu, invstd_.data(), r_.data(),
                                    d_.data(), channels_);
    if (!dx) return;
    if (synced_) comm_->allreduce_sum(backward_sums_.data(), 2 * channels_);
    kernels::bn_backward_input_train(dx, dy, x, mean_.data(), invstd_.data(), weight_r_.data(), relu_out, sum_dy,
                                     sum_dy_xmu, count_, n, channels_, spatial_);
  }


 public:
  void set_communicator(Communicator* comm) override {
    if (comm && options_.virtual_batch) {
      fail(type(), "virtual_batch",
           "ghost batches are not defined with synchronized batch norm (--sync-bn): use one or the other");
    }
    comm_ = comm;
  }

  bool eval_mixes_samples() const override { return !options_.track_running_stats; }

  void reset_state() override {
    if (options_.track_running_stats) t_.reset_running(channels_);
    if (options_.affine && options_.freeze == BatchNormFreeze::All) t_.reset_affine(channels_);  // buffers
  }

  int64_t macs_per_sample() const override { return channels_ * spatial_; }

  std::vector<std::pair<std::string, std::string>> spec_settings() const override {
    std::vector<std::pair<std::string, std::string>> s;
    if (options_.eps != 1e-5) s.emplace_back("eps", spec_value(options_.eps));
    if (!options_.momentum) s.emplace_back("momentum", "none");
    else if (*options_.momentum != 0.1) s.emplace_back("momentum", spec_value(*options_.momentum));
    if (!options_.affine) s.emplace_back("affine", "false");
    if (!options_.track_running_stats) s.emplace_back("track_running_stats", "false");
    if (options_.virtual_batch) s.emplace_back("virtual_batch", spec_value(options_.virtual_batch));
    if (options_.freeze != BatchNormFreeze::None) s.emplace_back("frozen", freeze_name(options_.freeze));
    if (options_.renorm) {
      const BatchRenormOptions& r = *options_.renorm;
      s.emplace_back("renorm", "true");
      s.emplace_back("r_max", spec_value(r.r_max));
      s.emplace_back("d_max", spec_value(r.d_max));
      if (r.warmup) s.emplace_back("renorm_warmup", spec_value(r.warmup));
      if (r.ramp) s.emplace_back("renorm_ramp", spec_value(r.ramp));
    }
    return s;
  }

  std::string describe() const override {
    std::string s = std::to_string(channels_);
    if (options_.eps != 1e-5) s += ", eps=" + std::to_string(options_.eps);
    if (!options_.momentum) s += ", momentum=None";
    else if (*options_.momentum != 0.1) s += ", momentum=" + std::to_string(*options_.momentum);
    if (!options_.affine) s += ", affine=False";
    if (!options_.track_running_stats) s += ", track_running_stats=False";
    if (options_.virtual_batch) s += ", virtual_batch=" + std::to_string(options_.virtual_batch);
    if (options_.freeze != BatchNormFreeze::None) s += std::string(", frozen=") + freeze_name(options_.freeze);
    if (options_.renorm) {
      s += ", renorm r_max=" + spec_value(options_.renorm->r_max) + " d_max=" + spec_value(options_.renorm->d_max);
      if (options_.renorm->warmup || options_.renorm->ramp) {
        s += " warmup=" + std::to_string(options_.renorm->warmup) + " ramp=" + std::to_string(options_.renorm->ramp);
      }
    }
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

  // With the statistics of group `at` (a channel offset into mean_ and var_sum_).
  void update_running(int64_t count, int64_t at) {
    *t_.num_batches_tracked.counter += 1;
    const double factor =
        options_.momentum ? *options_.momentum : 1.0 / static_cast<double>(*t_.num_batches_tracked.counter);
    kernels::bn_update_running(t_.running_mean.data, t_.running_var.data, mean_.data() + at, var_sum_.data() + at,
                               count, factor, channels_);
  }

  // The variants' own settings and the combinations that have no meaning.
  void check_variant() const {
    if (options_.virtual_batch < 0) fail(type(), "virtual_batch", "must be positive (0: the whole batch)");
    if (options_.freeze != BatchNormFreeze::None) {
      if (!options_.track_running_stats) fail(type(), "frozen", "needs track_running_stats (it normalizes with them)");
      if (options_.virtual_batch) fail(type(), "frozen", "uses no batch statistics: virtual_batch has no meaning with it");
      if (options_.renorm) fail(type(), "frozen", "uses no batch statistics: renorm has no meaning with it");
    }
    if (!options_.renorm) return;
    const BatchRenormOptions& r = *options_.renorm;
    if (!(r.r_max >= 1)) fail(type(), "r_max", "must be at least 1");
    if (!(r.d_max >= 0)) fail(type(), "d_max", "must be at least 0");
    if (r.warmup < 0 || r.ramp < 0) fail(type(), "renorm_warmup", "and renorm_ramp must be at least 0");
    if (!options_.track_running_stats) fail(type(), "renorm", "needs track_running_stats (r and d compare with them)");
    if (options_.virtual_batch) fail(type(), "renorm", "and virtual_batch together are not supported");
  }

  static const char* freeze_name(BatchNormFreeze f) { return f == BatchNormFreeze::All ? "all" : "stats"; }

  BatchNormKind kind_;
  BatchNormOptions options_;
  int64_t channels_ = 0, spatial_ = 0;
  Shape input_shape_;
  NormTensors t_;
  bool batch_stats_ = true;  // which statistics the last forward normalized with
  int64_t groups_ = 1;       // ghost batches of the last forward (1: the batch as one)
  Communicator* comm_ = nullptr;  // synchronized batch norm when set
  bool synced_ = false;           // the last forward used the global batch
  int64_t count_ = 0;             // values per channel behind the last batch statistics
  // Saved by forward for backward, per channel and ghost batch (groups x C).
  std::vector<float> mean_, invstd_, var_sum_;
  // Batch Renormalization's r, d and the coefficients folded from them (C).
  std::vector<float> r_, d_, invstd_r_, weight_r_, bias_d_;
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
