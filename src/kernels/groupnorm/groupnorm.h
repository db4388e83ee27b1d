// Per-sample-group normalization kernels over (N, C, S) tensors, the one set behind GroupNorm,
// InstanceNorm and LayerNorm (docs/DESIGN: "The normalization family"):
//   N batch, C channels, S positions per channel, G groups of C/G consecutive channels;
//   the statistics of group (n, g) run over its (C/G)*S values, contiguous in memory.
// GroupNorm(G):        G groups, affine per channel.
// InstanceNorm:        G = C, affine per channel.
// LayerNorm over (C, H, W): G = 1 seen as (N, C*H*W, 1): one group, C' = C*H*W "channels" of one
//   position each, so that the per-channel affine is LayerNorm's elementwise one (weight (C, H, W)).
// The affine is (C) weight and bias, either may be null (no affine).
//
// Numerics: the statistics accumulate in double (two passes: the mean, then the squared
// deviations from it; never E[x^2] - E[x]^2) and are kept in double, so that
// y = (x - mean) * invstd * w + b is exact to float even with mean 1e4 and std 1e-2. PyTorch's CPU
// kernel (aten/src/ATen/native/cpu/group_norm_kernel.cpp, 1.13) uses float Welford moments and
// y = x * (rstd * w) + (b - mean * rstd * w) in float, off by up to ~0.05 in that case; the
// fixtures there come from PyTorch in float64 (tools/golden/golden_norms.py).
// Determinism: static OpenMP shares over (n, g) or (c), every sum in a fixed order.
#pragma once

#include <cstdint>

namespace bnlab::kernels {

// mean[n, g] = sum(x[n, g]) / M, invstd[n, g] = 1 / sqrt(sum((x[n, g] - mean)^2) / M + eps),
// M = (C/G) * S; var_sum[n, g] = sum((x[n, g] - mean)^2) if var_sum is not null. All (N, G).
template <typename T>
void gn_stats(double* mean, double* invstd, double* var_sum, const T* x, double eps, int64_t N,
              int64_t C, int64_t S, int64_t G);

// y[n, c, s] = (x[n, c, s] - mean[n, g]) * invstd[n, g] * w[c] + b[c], g = c / (C/G);
// w = 1, b = 0 when null. mean, invstd (N, G).
template <typename T>
void gn_normalize(T* y, const T* x, const double* mean, const double* invstd, const T* weight,
                  const T* bias, int64_t N, int64_t C, int64_t S, int64_t G);

// Input stats from per-channel values shared by all samples (InstanceNorm in eval with running
// statistics): mean[n, c] = running_mean[c], invstd[n, c] = 1 / sqrt(running_var[c] + eps). (N, C).
template <typename T>
void gn_stats_from_running(double* mean, double* invstd, const T* running_mean, const T* running_var,
                           double eps, int64_t N, int64_t C);

// Backward of gn_normalize with the statistics of the batch (train, or eval without running
// statistics): with xhat = (x - mean) * invstd, g = dy * w, over the M values of a group,
//   dx = invstd * (g - mean(g) - xhat * mean(g * xhat))
// (the derivative of y = xhat(x) * w + b, xhat depending on x through mean and invstd; as
// PyTorch's GroupNormBackward, aten/src/ATen/native/cpu/group_norm_kernel.cpp).
// partial (2 N C) is scratch: per (n, c), sum_s dy and sum_s dy * xhat, which give
//   dweight[c] += sum_n sum_s dy * xhat,   dbias[c] += sum_n sum_s dy   (accumulated).
// dx, dweight, dbias may be null; dx is overwritten.
template <typename T>
void gn_backward(T* dx, T* dweight, T* dbias, double* partial, const T* dy, const T* x,
                 const double* mean, const double* invstd, const T* weight, int64_t N, int64_t C,
                 int64_t S, int64_t G);

// Backward with fixed statistics (InstanceNorm in eval with running statistics, G = C):
//   dx = dy * w[c] * invstd[n, c]; the parameter gradients as gn_backward.
template <typename T>
void gn_backward_fixed_stats(T* dx, T* dweight, T* dbias, double* partial, const T* dy, const T* x,
                             const double* mean, const double* invstd, const T* weight, int64_t N,
                             int64_t C, int64_t S);

// InstanceNorm's running statistics (torch.nn.functional.instance_norm, 1.13: batch_norm over the
// input seen as (1, N*C, S) with the running statistics repeated N times, then averaged over N):
//   running_mean[c] = (1 - m) running_mean[c] + m * mean_n(mean[n, c])
//   running_var[c]  = (1 - m) running_var[c]  + m * mean_n(var_sum[n, c] / (S - 1))   (unbiased)
// mean, var_sum (N, C) from gn_stats with G = C; S > 1.
template <typename T>
void in_update_running(T* running_mean, T* running_var, const double* mean, const double* var_sum,
                       double momentum, int64_t N, int64_t C, int64_t S);

}  // namespace bnlab::kernels
