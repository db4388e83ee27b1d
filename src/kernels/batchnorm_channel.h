// Per-channel pieces shared by the split batch-norm kernels (batchnorm.cpp) and the fused ones
// (batchnorm_fused.cpp): one definition of each formula, so both give the same bits.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/rows.h"

namespace bnlab::kernels::bn_detail {

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
