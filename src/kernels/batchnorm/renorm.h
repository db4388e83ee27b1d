// Batch Renormalization's corrections (Ioffe 2017, Algorithm 1) over BN's per-channel statistics.
// A renormalized batch is BN with per-channel coefficients changed: the layer computes r and d,
// folds them into BN's invstd, weight and bias, and runs BN's kernels (batchnorm.h) with those,
// r and d being constants for backward as the paper says. With r = 1 and d = 0 every folded
// coefficient is BN's own value, so the result is BN's to the bit.
#pragma once

#include <cstdint>

namespace bnlab::kernels {

// sigma_B = sqrt(var_sum / count + eps), sigma = sqrt(running_var + eps), in double:
//   r[c] = clip(sigma_B / sigma, 1 / r_max, r_max),
//   d[c] = clip((mean - running_mean) / sigma, -d_max, d_max).
template <typename T>
void renorm_correction(T* r, T* d, const T* mean, const T* var_sum, int64_t count, const T* running_mean,
                       const T* running_var, double eps, double r_max, double d_max, int64_t C);

// The renormalized batch as BN coefficients: y = weight * ((x - mean) * invstd * r + d) + bias
// = (x - mean) * (invstd * r) * weight + (bias + weight * d). Writes invstd_r = invstd * r and
// bias_d = bias + weight * d for the forward, weight_r = weight * r for the input gradient.
// weight and bias may be null (affine off: 1 and 0).
template <typename T>
void renorm_coefficients(T* invstd_r, T* weight_r, T* bias_d, const T* invstd, const T* r, const T* d,
                         const T* weight, const T* bias, int64_t C);

// Parameter gradients accumulate: dweight += r * sum_dy_xmu * invstd + d * sum_dy (the gradient
// of weight * x_hat with x_hat = (x - mean) * invstd * r + d), dbias += sum_dy.
template <typename T>
void renorm_backward_params(T* dweight, T* dbias, const double* sum_dy, const double* sum_dy_xmu, const T* invstd,
                            const T* r, const T* d, int64_t C);

}  // namespace bnlab::kernels
