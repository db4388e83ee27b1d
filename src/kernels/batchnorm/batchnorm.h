// Batch-normalization kernels over (N, C, S) tensors, the layout BatchNorm1d and BatchNorm2d share:
// N batch, C channels, S positions per channel (H*W for images, L for sequences, 1 for (N, C)).
//
// Split where a synchronized BN must cut them, so local and distributed BN share one path:
//   forward:  bn_stats -> (merge across processes) -> bn_invstd -> bn_normalize
//   backward: bn_backward_reduce -> (sum across processes) -> bn_backward_input, bn_backward_params
//
// Numerics follow PyTorch's CPU kernel (aten/src/ATen/native/cpu/batch_norm_kernel.cpp, 1.13):
// the mean is summed in double and rounded to float, var_sum is the sum of the squared deviations
// from that float mean, in double (never E[x^2] - E[x]^2); y = x * alpha + beta with
// alpha = weight * invstd, beta = bias - mean * alpha, each one rounding (a fused multiply-add
// where the CPU has FMA, as PyTorch's vectorized kernel compiles). With a large mean (1e4) and a
// tiny variance, x * alpha is ~1e6 and rounds to 0.06: any other formula, or an invstd one ulp
// off, would move y by that much, so bnlab computes the same quantities in the same precision.
// PyTorch reads the tensor twice for them (the sum, then the squared deviations); one process
// reads it once (bn_stats, bn_forward_train: sums of x - shift and of its square in double, then
// the identity in batchnorm_channel.h), which gives PyTorch's mean and var_sum to the last bit or
// one ulp, and exactly in the large-mean case. A synchronized BN keeps the two passes
// (bn_channel_sums, bn_channel_squared_deviations): the mean must be global before the squares.
#pragma once

#include <cstdint>

namespace bnlab::kernels {

// mean[c] = sum(x[:, c, :]) / (N*S); var_sum[c] = sum((x - mean[c])^2). Both (C).
// One pass over x, for one process (above).
template <typename T>
void bn_stats(T* mean, T* var_sum, const T* x, int64_t N, int64_t C, int64_t S);

// A synchronized BN's statistics, PyTorch's two passes, each summed across processes.
// Pass 1: sum[c] = sum(x[:, c, :]) in double.
template <typename T>
void bn_channel_sums(double* sum, const T* x, int64_t N, int64_t C, int64_t S);

// Pass 2: squares[c] = sum(float((x - mean[c])^2)) in double, mean rounded to T as PyTorch.
template <typename T>
void bn_channel_squared_deviations(double* squares, const T* x, const T* mean, int64_t N, int64_t C,
                                   int64_t S);

// invstd[c] = 1 / sqrt(var_sum[c] / count + eps), computed in double as PyTorch does.
template <typename T>
void bn_invstd_from_var_sum(T* invstd, const T* var_sum, int64_t count, double eps, int64_t C);

// invstd[c] = 1 / sqrt(var[c] + eps) for eval mode, in T as PyTorch does.
template <typename T>
void bn_invstd_from_var(T* invstd, const T* var, double eps, int64_t C);

// running = (1 - momentum) * running + momentum * batch, with the unbiased variance
// var_sum / (count - 1). running_mean or running_var may be null.
template <typename T>
void bn_update_running(T* running_mean, T* running_var, const T* mean, const T* var_sum,
                       int64_t count, double momentum, int64_t C);

// alpha[c] = invstd[c] * weight[c], beta[c] = bias[c] - mean[c] * alpha[c] (one rounding): the
// map bn_normalize applies, for layers that apply it themselves (inference fusion). weight and
// bias may be null (affine off: 1 and 0).
template <typename T>
void bn_affine(T* alpha, T* beta, const T* mean, const T* invstd, const T* weight, const T* bias,
               int64_t C);

// y = x * alpha + beta per channel; weight and bias may be null (affine off: 1 and 0).
template <typename T>
void bn_normalize(T* y, const T* x, const T* mean, const T* invstd, const T* weight,
                  const T* bias, int64_t N, int64_t C, int64_t S);

// y = max(x * alpha + beta, 0): BN followed by ReLU in one pass.
template <typename T>
void bn_normalize_relu(T* y, const T* x, const T* mean, const T* invstd, const T* weight,
                       const T* bias, int64_t N, int64_t C, int64_t S);

// sum_dy[c] = sum(dy[:, c, :]); sum_dy_xmu[c] = sum(dy * (x - mean[c])). Both (C), in double.
// With relu_out (the output of bn_normalize_relu), dy counts only where relu_out > 0: the
// backward of the fused ReLU. relu_out may be null.
template <typename T>
void bn_backward_reduce(double* sum_dy, double* sum_dy_xmu, const T* dy, const T* x,
                        const T* mean, const T* relu_out, int64_t N, int64_t C, int64_t S);

// Training mode, statistics from the batch (count values per channel):
//   dx = (dy - sum_dy/count - (x - mean) * sum_dy_xmu * invstd^2 / count) * invstd * weight
// relu_out as for bn_backward_reduce.
template <typename T>
void bn_backward_input_train(T* dx, const T* dy, const T* x, const T* mean, const T* invstd,
                             const T* weight, const T* relu_out, const double* sum_dy,
                             const double* sum_dy_xmu, int64_t count, int64_t N, int64_t C,
                             int64_t S);

// Eval mode, statistics fixed: dx = dy * invstd * weight (dy masked by relu_out if set).
template <typename T>
void bn_backward_input_eval(T* dx, const T* dy, const T* invstd, const T* weight,
                            const T* relu_out, int64_t N, int64_t C, int64_t S);

// The split kernels above, fused channel by channel for one process (a synchronized BN must cut
// them where the processes meet, and takes its statistics in two passes); the same operations,
// so the same bits:
//   bn_forward_train = bn_stats, bn_invstd_from_var_sum (count N*S), bn_normalize[_relu];
//   bn_backward_train = bn_backward_reduce, bn_backward_input_train.
// Outputs mean, var_sum, invstd (C) and sum_dy, sum_dy_xmu (C) are those of the split kernels.
template <typename T>
void bn_forward_train(T* y, T* mean, T* var_sum, T* invstd, const T* x, const T* weight, const T* bias,
                      double eps, bool relu, int64_t N, int64_t C, int64_t S);
// With relu, the backward of bn_forward_train's fused ReLU: dy counts where x * alpha + beta > 0,
// the map recomputed from mean, invstd, weight and bias (those of the forward), which is where
// the forward's output is > 0; the split kernels' relu_out mask gives the same bits.
template <typename T>
void bn_backward_train(T* dx, double* sum_dy, double* sum_dy_xmu, const T* dy, const T* x, const T* mean,
                       const T* invstd, const T* weight, const T* bias, bool relu, int64_t N, int64_t C, int64_t S);

// BN, ReLU and the 2x2, stride-2 max-pool after them in training, fused: bn_forward_train with
// relu whose output goes straight into maxpool2d_forward (y (N, C, H/2, W/2) and argmax, which
// may be null), never stored; the backward is bn_backward_train with relu whose dy is what
// maxpool2d_backward makes of the pooled gradient dy and argmax, made a plane at a time in L1.
// The same bits as the three run one by one. Planes of at most kMaxFusedPoolPlane values, H, W >= 2.
constexpr int64_t kMaxFusedPoolPlane = 4096;
void bn_forward_train_relu_pool(float* y, int32_t* argmax, float* mean, float* var_sum, float* invstd,
                                const float* x, const float* weight, const float* bias, double eps, int64_t N,
                                int64_t C, int64_t H, int64_t W);
void bn_backward_train_relu_pool(float* dx, double* sum_dy, double* sum_dy_xmu, const float* dy,
                                 const int32_t* argmax, const float* x, const float* mean, const float* invstd,
                                 const float* weight, const float* bias, int64_t N, int64_t C, int64_t H,
                                 int64_t W);

// Parameter gradients accumulate: dweight += sum_dy_xmu * invstd, dbias += sum_dy.
template <typename T>
void bn_backward_params(T* dweight, T* dbias, const double* sum_dy, const double* sum_dy_xmu,
                        const T* invstd, int64_t C);

}  // namespace bnlab::kernels
