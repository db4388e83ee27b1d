// GroupNorm, LayerNorm and InstanceNorm1d/2d with PyTorch's semantics (torch.nn.modules.
// normalization and instancenorm, 1.13): one layer over the per-sample-group kernels
// (kernels/groupnorm/groupnorm.h), which each of them is a configuration of:
// - GroupNorm(G):  (N, C, S) in G groups, affine per channel;
// - InstanceNorm:  G = C, affine per channel; with track_running_stats, training also updates
//   running_mean / running_var (num_batches_tracked is saved but, as in PyTorch, not counted)
//   and eval normalizes with them;
// - LayerNorm:     the sample as (C*S, 1) in one group, the affine elementwise over the sample.
// Statistics come from the sample alone: no layer here mixes samples, in train or eval.
#include <string>
#include <vector>

#include "bnlab/error.h"
#include "bnlab/layers.h"
#include "kernels/groupnorm/groupnorm.h"
#include "layers/norm_tensors.h"
#include "layers/spec_values.h"

namespace bnlab {
namespace {

enum class Variant { Group, Layer, Instance1d, Instance2d };

struct SampleNormConfig {
  Variant variant;
  int64_t num_groups = 0;  // GroupNorm
  double eps = 1e-5;
  double momentum = 0.1;   // InstanceNorm with running statistics
  bool affine = true;
  bool track_running_stats = false;
};

class SampleGroupNorm final : public Layer {
 public:
  explicit SampleGroupNorm(const SampleNormConfig& o) : o_(o) {}

  std::string_view type() const override {
    switch (o_.variant) {
      case Variant::Group: return "GroupNorm";
      case Variant::Layer: return "LayerNorm";
      case Variant::Instance1d: return "InstanceNorm1d";
      case Variant::Instance2d: return "InstanceNorm2d";
    }
    return "";
  }

  LayerKind kind() const override {
    if (o_.variant == Variant::Group) return LayerKind::GroupNorm;
    return o_.variant == Variant::Layer ? LayerKind::LayerNorm : LayerKind::InstanceNorm;
  }

  Shape setup(const Shape& in) override {
    if (o_.variant == Variant::Instance1d && in.size() != 2) {
      fail(type(), "input", "expects (C, L) per sample, got " + to_string(in));
    }
    if (o_.variant == Variant::Instance2d && in.size() != 3) {
      fail(type(), "input", "expects (C, H, W) per sample, got " + to_string(in));
    }
    if (in.empty()) fail(type(), "input", "expects (C, ...) per sample, got " + to_string(in));
    if (!(o_.eps > 0)) fail(type(), "eps", "must be positive");
    if (!(o_.momentum >= 0 && o_.momentum <= 1)) fail(type(), "momentum", "must be in [0, 1]");
    const int64_t numel = checked_numel(in, type(), "input");
    input_shape_ = in;
    if (o_.variant == Variant::Layer) {  // one group of C*S "channels" of one position
      channels_ = numel;
      spatial_ = 1;
      groups_ = 1;
      return in;
    }
    channels_ = in[0];
    spatial_ = numel / in[0];
    groups_ = o_.variant == Variant::Group ? o_.num_groups : channels_;
    if (groups_ < 1 || channels_ % groups_ != 0) {
      fail(type(), "num_groups",
           std::to_string(o_.num_groups) + " does not divide the " + std::to_string(channels_) + " channels");
    }
    return in;
  }

  std::vector<TensorDecl> declare() const override {
    const Shape param = o_.variant == Variant::Layer ? input_shape_ : Shape{channels_};
    return NormTensors::declare(param, channels_, o_.affine, o_.track_running_stats);
  }
  void bind(std::span<const TensorSlot> slots) override { t_.bind(slots, o_.affine, o_.track_running_stats); }
  void reset_state() override {
    if (o_.track_running_stats) t_.reset_running(channels_);
  }

  // Per (sample, group) statistics and per (sample, channel) backward sums for max_batch samples.
  void reserve(int64_t max_batch, int /*threads*/) override {
    mean_.assign(max_batch * groups_, 0.0);
    invstd_.assign(max_batch * groups_, 0.0);
    var_sum_.assign(o_.track_running_stats ? max_batch * groups_ : 0, 0.0);
    partial_.assign(2 * max_batch * channels_, 0.0);
  }

  void forward(float* y, const float* x, int64_t n, const RunContext& ctx) override {
    batch_stats_ = ctx.mode == Mode::Train || !o_.track_running_stats;
    if (batch_stats_) {
      if (is_instance() && spatial_ <= 1) {
        Shape full = input_shape_;
        full.insert(full.begin(), n);
        fail(type(), "input", "expected more than 1 spatial element when training, got input size " + to_string(full));
      }
      const bool update = ctx.mode == Mode::Train && o_.track_running_stats;
      kernels::gn_stats(mean_.data(), invstd_.data(), update ? var_sum_.data() : nullptr, x, o_.eps, n,
                        channels_, spatial_, groups_);
      if (update) {
        kernels::in_update_running(t_.running_mean.data, t_.running_var.data, mean_.data(), var_sum_.data(),
                                   o_.momentum, n, channels_, spatial_);
      }
    } else {
      kernels::gn_stats_from_running(mean_.data(), invstd_.data(), t_.running_mean.data, t_.running_var.data,
                                     o_.eps, n, channels_);
    }
    kernels::gn_normalize(y, x, mean_.data(), invstd_.data(), t_.weight.data, t_.bias.data, n, channels_,
                          spatial_, groups_);
  }

  void backward(float* dx, const float* dy, const float* x, const float* /*y*/, int64_t n) override {
    if (batch_stats_) {
      kernels::gn_backward(dx, t_.weight.grad, t_.bias.grad, partial_.data(), dy, x, mean_.data(), invstd_.data(),
                           t_.weight.data, n, channels_, spatial_, groups_);
    } else {
      kernels::gn_backward_fixed_stats(dx, t_.weight.grad, t_.bias.grad, partial_.data(), dy, x, mean_.data(),
                                       invstd_.data(), t_.weight.data, n, channels_, spatial_);
    }
  }

  // The statistics are the sample's own (or InstanceNorm's running ones): never the batch's.
  bool eval_mixes_samples() const override { return false; }

  int64_t macs_per_sample() const override { return channels_ * spatial_; }

  std::vector<std::pair<std::string, std::string>> spec_settings() const override {
    std::vector<std::pair<std::string, std::string>> s;
    if (o_.variant == Variant::Group) s.emplace_back("num_groups", spec_value(o_.num_groups));
    if (o_.eps != 1e-5) s.emplace_back("eps", spec_value(o_.eps));
    if (o_.variant == Variant::Layer) {
      if (!o_.affine) s.emplace_back("elementwise_affine", "false");
      return s;
    }
    if (is_instance()) {
      if (o_.momentum != 0.1) s.emplace_back("momentum", spec_value(o_.momentum));
      if (o_.affine) s.emplace_back("affine", "true");
      if (o_.track_running_stats) s.emplace_back("track_running_stats", "true");
    } else if (!o_.affine) {
      s.emplace_back("affine", "false");
    }
    return s;
  }

  // PyTorch's repr arguments: "8, 32", "(32, 14, 14)", "32, affine=True".
  std::string describe() const override {
    std::string s;
    if (o_.variant == Variant::Layer) {
      for (int64_t d : input_shape_) s += (s.empty() ? "(" : ", ") + std::to_string(d);
      s += input_shape_.size() == 1 ? ",)" : ")";
    } else {
      if (o_.variant == Variant::Group) s = std::to_string(o_.num_groups) + ", ";
      s += std::to_string(channels_);
    }
    if (o_.eps != 1e-5) s += ", eps=" + std::to_string(o_.eps);
    if (o_.variant == Variant::Layer) return o_.affine ? s : s + ", elementwise_affine=False";
    if (!is_instance()) return o_.affine ? s : s + ", affine=False";
    if (o_.momentum != 0.1) s += ", momentum=" + std::to_string(o_.momentum);
    if (o_.affine) s += ", affine=True";
    if (o_.track_running_stats) s += ", track_running_stats=True";
    return s;
  }

 private:
  bool is_instance() const { return o_.variant == Variant::Instance1d || o_.variant == Variant::Instance2d; }

  SampleNormConfig o_;
  Shape input_shape_;
  int64_t channels_ = 0, spatial_ = 0, groups_ = 0;  // the kernels' (C, S, G)
  NormTensors t_;
  bool batch_stats_ = true;  // the last forward normalized with the sample's statistics
  // Saved by forward for backward: per (sample, group), in double (groupnorm.h).
  std::vector<double> mean_, invstd_, var_sum_;
  std::vector<double> partial_;  // (2 N C): the backward's per (sample, channel) sums
};

}  // namespace

std::unique_ptr<Layer> make_groupnorm(const GroupNormOptions& o) {
  return std::make_unique<SampleGroupNorm>(
      SampleNormConfig{.variant = Variant::Group, .num_groups = o.num_groups, .eps = o.eps, .affine = o.affine});
}

std::unique_ptr<Layer> make_layernorm(const LayerNormOptions& o) {
  return std::make_unique<SampleGroupNorm>(
      SampleNormConfig{.variant = Variant::Layer, .eps = o.eps, .affine = o.elementwise_affine});
}

std::unique_ptr<Layer> make_instancenorm(InstanceNormKind kind, const InstanceNormOptions& o) {
  return std::make_unique<SampleGroupNorm>(SampleNormConfig{
      .variant = kind == InstanceNormKind::TwoD ? Variant::Instance2d : Variant::Instance1d,
      .eps = o.eps,
      .momentum = o.momentum,
      .affine = o.affine,
      .track_running_stats = o.track_running_stats});
}

}  // namespace bnlab
