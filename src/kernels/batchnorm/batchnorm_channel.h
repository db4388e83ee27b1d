// Per-channel pieces shared by the split batch-norm kernels (batchnorm.cpp) and the fused ones
// (batchnorm_fused.cpp): one definition of each formula, so both give the same bits.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/batchnorm/rows.h"

namespace bnlab::kernels::bn_detail {

// A channel's mean and var_sum from one pass of shifted sums, sum = sum(d) and squares =
// sum(d^2) with d = x - shift (row_shifted_sums). The mean is PyTorch's: the sum of x in double,
// rounded to T. var_sum is the sum of squared deviations from that rounded mean, as PyTorch's
// second pass takes it, by the identity sum((d - delta)^2) = squares - delta * (2 sum - count
// delta), delta = mean - shift, in double. The shift is one of the channel's values, so its own
// squared deviation bounds delta^2 by var_sum: squares <= (count + 1) var_sum, and the
// subtraction loses at most log2(count + 1) of double's 53 bits (not E[x^2] - E[x]^2's all).
// PyTorch rounds each square to float before adding it, which moves its var_sum by about
// 2^-24 / sqrt(count) of itself: the two round to the same float or to neighbours. Where the
// squares are exact in float (a large mean: x - mean is a short multiple of x's ulp) both are
// exact, the same bits.
template <typename T>
inline void moments_from_shifted_sums(T* mean, T* var_sum, double sum, double squares, T shift, int64_t count) {
  const double n = static_cast<double>(count), k = static_cast<double>(shift);
  *mean = static_cast<T>((n * k + sum) / n);
  const double delta = static_cast<double>(*mean) - k;
  *var_sum = static_cast<T>(std::max(0.0, squares - delta * (2.0 * sum - n * delta)));
}

// 1 / sqrt(var_sum / count + eps), the biased variance in T, the root in double, as PyTorch.
template <typename T>
inline T invstd_of(T var_sum, int64_t count, double eps) {
  const T biased_var = var_sum / static_cast<T>(count);
  return static_cast<T>(1.0 / std::sqrt(static_cast<double>(biased_var) + eps));
}

// alpha = invstd * weight, beta = bias - mean * alpha: the map y = x * alpha + beta.
template <typename T>
inline void channel_affine(T* alpha, T* beta, T mean, T invstd, const T* weight, const T* bias, int64_t c) {
  *alpha = invstd * (weight ? weight[c] : T(1));
  // One rounding, as PyTorch's kernel compiled for AVX2/AVX-512 (the compiler fuses it there).
  *beta = std::fma(-mean, *alpha, bias ? bias[c] : T(0));
}

// Channel c's coefficients of the training-mode input gradient,
//   dx = (dy - grad_mean - (x - mean) * k) * scale,
// from its two backward sums over `count` values.
template <typename T>
struct GradCoefficients {
  T k, grad_mean, scale;
};
template <typename T>
inline GradCoefficients<T> grad_coefficients(const double* sum_dy, const double* sum_dy_xmu, const T* invstd,
                                             const T* weight, int64_t count, int64_t c) {
  return {static_cast<T>(sum_dy_xmu[c]) * invstd[c] * invstd[c] / static_cast<T>(count),
          static_cast<T>(sum_dy[c]) / static_cast<T>(count), invstd[c] * (weight ? weight[c] : T(1))};
}

// Row (n, c) of the training-mode input gradient.
template <typename T>
inline void input_grad_row(T* dx, const T* dy, const T* x, const T* mean, const T* invstd, const T* weight,
                           const T* relu_out, const double* sum_dy, const double* sum_dy_xmu, int64_t count,
                           int64_t n, int64_t c, int64_t C, int64_t S) {
  const auto [k, grad_mean, scale] = grad_coefficients(sum_dy, sum_dy_xmu, invstd, weight, count, c);
  const int64_t row = (n * C + c) * S;
  if (relu_out) {
    row_bn_input_grad_masked(dx + row, dy + row, relu_out + row, x + row, S, mean[c], k, grad_mean, scale);
  } else {
    row_bn_input_grad(dx + row, dy + row, x + row, S, mean[c], k, grad_mean, scale);
  }
}

}  // namespace bnlab::kernels::bn_detail
