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

// The fast statistics (row_sum_and_squares): sum = sum(x) in double, squares = sum((x - shift)^2)
// with the squares in float, shift = the mean of the channel's first row (first_row_mean), near
// the channel's mean. The mean is PyTorch's to the bit by construction: the sum of x in double over
// the count, rounded to T. var_sum follows from the same identity as above, with
// sum(x - shift) = sum - count * shift. The float squares carry a relative error of a few 2^-24
// over the root of the count; the identity magnifies it by squares / var_sum, which a shift near
// the mean keeps near 1. Returns false where that is not to be trusted (the factor over
// kMaxCancellation: the first row far from the rest; or fewer than kMinFastCount values): the
// caller then takes var_sum from exact_var_sum.
constexpr double kMaxCancellation = 4.0;
constexpr int64_t kMinFastCount = 256;

template <typename T>
inline T first_row_mean(const T* row, int64_t S) {
  double sum = 0;
  row_sum(row, S, &sum);
  return static_cast<T>(sum / static_cast<double>(S));
}

template <typename T>
inline bool moments_from_sums(T* mean, T* var_sum, double sum, double squares, T shift, int64_t count) {
  const double n = static_cast<double>(count), k = static_cast<double>(shift);
  *mean = static_cast<T>(sum / n);
  const double delta = static_cast<double>(*mean) - k;
  const double var = squares - delta * (2.0 * (sum - n * k) - n * delta);
  *var_sum = static_cast<T>(std::max(0.0, var));
  return count >= kMinFastCount && squares <= kMaxCancellation * var;
}

// Channel c's var_sum in a second, exact pass: the squared deviations from the rounded mean, each
// difference exact and each square rounded once in double (row_shifted_sums shifted by the mean).
template <typename T>
inline T exact_var_sum(const T* x, T mean, int64_t c, int64_t N, int64_t C, int64_t S) {
  double sum = 0, squares = 0;
  for (int64_t n = 0; n < N; ++n) row_shifted_sums(x + (n * C + c) * S, S, mean, &sum, &squares);
  return static_cast<T>(squares);
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
