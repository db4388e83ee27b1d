// The layers bnlab offers, each built from an options struct with PyTorch's argument names:
//   make_conv2d({.out_channels = 32, .kernel_size = 3})
// Input sizes (in_channels, in_features, num_features) are inferred from the previous layer.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "bnlab/layer.h"

namespace bnlab {

// How Conv2d and Linear start their parameters (Network::initialize): PyTorch's default
// (U(+-1/sqrt(fan_in)) for weight and bias), all zeros (Fixup's last layer of each residual
// branch and its classifier), or He et al. 2015's normal weights times `init_gain` with zero bias
// (Fixup's other branch layers, gain L^(-1/(2m-2)) for L blocks of m layers).
enum class WeightInit { Default, Zeros, KaimingNormal };

struct Conv2dOptions {
  int64_t out_channels = 0;
  int64_t kernel_size = 0;
  int64_t stride = 1;
  int64_t padding = 0;
  bool bias = true;
  WeightInit init = WeightInit::Default;
  double init_gain = 1.0;  // KaimingNormal only
};

struct LinearOptions {
  int64_t out_features = 0;
  bool bias = true;
  WeightInit init = WeightInit::Default;
  double init_gain = 1.0;  // KaimingNormal only
};

// Dimensionality a BatchNorm layer accepts: BatchNorm1d takes (C) or (C, L) per sample,
// BatchNorm2d (C, H, W).
enum class BatchNormKind { OneD, TwoD };

// What a frozen BatchNorm keeps fixed while training (torchvision's FrozenBatchNorm2d,
// detectron2's "freeze BN"): Stats, its running statistics, which it then normalizes with in
// training too and never updates (num_batches_tracked stays as it was); All, those and its affine
// parameters (weight and bias become buffers: saved under the same names, never trained).
// Evaluation is BN's either way.
enum class BatchNormFreeze { None, Stats, All };

// Batch Renormalization (Ioffe 2017, arXiv 1702.03275, Algorithm 1). In training,
//   y = weight * ((x - mean_B) / sigma_B * r + d) + bias,
//   r = clip(sigma_B / sigma, 1/r_max, r_max), d = clip((mean_B - running_mean) / sigma, -d_max, d_max),
// sigma_B = sqrt(var_B + eps) (biased batch variance), r and d constants in backward. The running
// statistics keep PyTorch's layout: running_var is BN's running average of the unbiased batch
// variance and sigma = sqrt(running_var + eps) (the paper averages sigma_B itself), so evaluation
// and the checkpoint are exactly BN's. The limits follow the paper's schedule: r_max = 1, d_max = 0
// (plain BN) for `warmup` training batches, then linearly to their values over `ramp` batches,
// counted by the layer's num_batches_tracked (so a resumed run continues the schedule).
struct BatchRenormOptions {
  double r_max = 3;  // >= 1; the paper's final value
  double d_max = 5;  // >= 0
  int64_t warmup = 0;
  int64_t ramp = 0;
};

struct BatchNormOptions {
  double eps = 1e-5;
  std::optional<double> momentum = 0.1;  // nullopt: cumulative moving average
  bool affine = true;
  bool track_running_stats = true;
  // Ghost batch normalization (Hoffer et al. 2017; Keras' virtual_batch_size): in training, each
  // run of virtual_batch consecutive samples is normalized with its own statistics, as
  // torch.cat([bn(c) for c in x.split(virtual_batch)]) computes: a batch it does not divide ends
  // with one smaller group, and the running statistics are updated once per group, in order
  // (num_batches_tracked counts groups). 0: the whole batch. Evaluation is BN's.
  int64_t virtual_batch = 0;
  BatchNormFreeze freeze = BatchNormFreeze::None;
  std::optional<BatchRenormOptions> renorm = std::nullopt;  // nullopt: plain batch normalization
};

// GroupNorm(num_groups, C): statistics per sample over each group of C/num_groups channels;
// num_groups must divide the channels. Weight and bias (C) when affine.
struct GroupNormOptions {
  int64_t num_groups = 0;
  double eps = 1e-5;
  bool affine = true;
};

// LayerNorm over the whole per-sample shape (nn.LayerNorm(normalized_shape) with normalized_shape
// the input's shape without the batch): weight and bias of that shape when elementwise_affine.
struct LayerNormOptions {
  double eps = 1e-5;
  bool elementwise_affine = true;
};

// InstanceNorm1d takes (C, L) per sample, InstanceNorm2d (C, H, W).
enum class InstanceNormKind { OneD, TwoD };

// PyTorch's defaults: no affine, no running statistics. With track_running_stats, training
// updates running_mean / running_var (the average over the batch's samples, unbiased variance)
// with `momentum`, and eval normalizes with them.
struct InstanceNormOptions {
  double eps = 1e-5;
  double momentum = 0.1;
  bool affine = false;
  bool track_running_stats = false;
};

struct MaxPool2dOptions {
  int64_t kernel_size = 2;
  int64_t stride = 0;  // 0: same as kernel_size, as PyTorch
  int64_t padding = 0;
};

// Average pooling as PyTorch's avg_pool2d: K x K windows every `stride`, zero padding counted in
// the divisor (count_include_pad=True), so every window divides by K * K.
struct AvgPool2dOptions {
  int64_t kernel_size = 2;
  int64_t stride = 0;  // 0: same as kernel_size, as PyTorch
  int64_t padding = 0;
};

struct DropoutOptions {
  double p = 0.5;
};

// Santurkar et al.'s "noisy BN" noise (layers/channel_noise.cpp): per channel and training step,
// y = x * U(1, scale) + U(-shift, shift); in eval the mean, y = x * (1 + scale) / 2.
struct ChannelNoiseOptions {
  double shift = 0.5;
  double scale = 1.5;
};

std::unique_ptr<Layer> make_conv2d(const Conv2dOptions& options);
std::unique_ptr<Layer> make_linear(const LinearOptions& options);
std::unique_ptr<Layer> make_batchnorm(BatchNormKind kind, const BatchNormOptions& options);
std::unique_ptr<Layer> make_groupnorm(const GroupNormOptions& options);
std::unique_ptr<Layer> make_layernorm(const LayerNormOptions& options);
std::unique_ptr<Layer> make_instancenorm(InstanceNormKind kind, const InstanceNormOptions& options);
std::unique_ptr<Layer> make_relu();
std::unique_ptr<Layer> make_maxpool2d(const MaxPool2dOptions& options);
std::unique_ptr<Layer> make_dropout(const DropoutOptions& options);
std::unique_ptr<Layer> make_channel_noise(const ChannelNoiseOptions& options);
std::unique_ptr<Layer> make_flatten();
std::unique_ptr<Layer> make_log_softmax();
std::unique_ptr<Layer> make_sigmoid();
std::unique_ptr<Layer> make_tanh();
// AdaptiveAvgPool2d(1), global average pooling: (C, H, W) -> (C, 1, 1), each channel's mean.
std::unique_ptr<Layer> make_avgpool2d(const AvgPool2dOptions& options);
std::unique_ptr<Layer> make_global_avgpool();
// y = x * weight and y = x + bias with one learnable scalar ([1], named "weight" and "bias"):
// SkipInit's branch multiplier (De & Smith 2020, started at 0) and Fixup's scalar multiplier and
// biases (Zhang et al. 2019, started at 1 and 0).
std::unique_ptr<Layer> make_scale(double init);
std::unique_ptr<Layer> make_bias();

// The skip path of a residual block, y = f(x) + skip(x):
//   Identity  skip(x) = x; f must keep the shape
//   ZeroPad   He et al. 2016's option A: x[:, :, ::s, ::s] with zero channels after x's, for an f
//             that strides by s (ceil(H / s) = f's height) and widens (f's channels >= x's)
//   Layers    the block's shortcut layers run on x (a strided 1x1 Conv2d and a BatchNorm2d, as
//             torchvision's downsample), their output of f's shape
enum class Shortcut { Identity, ZeroPad, Layers };

// y = f(x) + skip(x), f the layers of `body` in order, skip the Shortcut (`shortcut`'s layers
// when not empty, then Shortcut::Layers). Its tensors are named "<layer>.<tensor>" after the
// layer names of body and shortcut, one namespace (the network prefixes the block's name).
std::unique_ptr<Layer> make_residual(std::vector<NamedLayer> body, Shortcut skip = Shortcut::Identity,
                                     std::vector<NamedLayer> shortcut = {});

}  // namespace bnlab
