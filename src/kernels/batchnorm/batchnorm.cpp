// The split batch-normalization kernels; see batchnorm.h for the math and its source, and
// batchnorm_fused.cpp for the one-process kernels built from the same pieces
// (batchnorm_channel.h). Each channel is reduced by one thread (static schedule), so results do
// not depend on timing. The row loops live in rows.cpp, compiled per instruction set.
#include "kernels/batchnorm/batchnorm.h"

#include <cmath>

#include "kernels/batchnorm/batchnorm_channel.h"
#include "kernels/batchnorm/rows.h"

namespace bnlab::kernels {
using bn_detail::channel_affine;
using bn_detail::input_grad_row;
using bn_detail::invstd_of;
using bn_detail::exact_var_sum;
using bn_detail::first_row_mean;
using bn_detail::moments_from_sums;

template <typename T>
void bn_channel_sums(double* sum, const T* x, int64_t N, int64_t C, int64_t S) {
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < C; ++c) {
    double s = 0;
    for (int64_t n = 0; n < N; ++n) row_sum(x + (n * C + c) * S, S, &s);
    sum[c] = s;
  }
}

template <typename T>
void bn_channel_squared_deviations(double* squares, const T* x, const T* mean, int64_t N, int64_t C,
                                   int64_t S) {
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < C; ++c) {
    double q = 0;
    for (int64_t n = 0; n < N; ++n) row_squared_deviations(x + (n * C + c) * S, S, mean[c], &q);
    squares[c] = q;
  }
}

namespace {
// One channel's statistics in one pass over its values (moments_from_sums), a second where that
// declines.
template <typename T>
void channel_stats(T* mean, T* var_sum, const T* x, int64_t c, int64_t N, int64_t C, int64_t S) {
  const T shift = first_row_mean(x + c * S, S);
  StatLanes lanes;
  for (int64_t n = 0; n < N; ++n) row_stat_lanes(x + (n * C + c) * S, S, shift, &lanes);
  double sum, squares;
  stat_lanes_total(lanes, &sum, &squares);
  if (!moments_from_sums(mean, var_sum, sum, squares, shift, N * S)) *var_sum = exact_var_sum(x, *mean, c, N, C, S);
}

}  // namespace

template <typename T>
void bn_stats(T* mean, T* var_sum, const T* x, int64_t N, int64_t C, int64_t S) {
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < C; ++c) channel_stats(mean + c, var_sum + c, x, c, N, C, S);
}

template <typename T>
void bn_invstd_from_var_sum(T* invstd, const T* var_sum, int64_t count, double eps, int64_t C) {
  for (int64_t c = 0; c < C; ++c) invstd[c] = invstd_of(var_sum[c], count, eps);
}

template <typename T>
void bn_invstd_from_var(T* invstd, const T* var, double eps, int64_t C) {
  for (int64_t c = 0; c < C; ++c) invstd[c] = T(1) / std::sqrt(var[c] + static_cast<T>(eps));
}

template <typename T>
void bn_update_running(T* running_mean, T* running_var, const T* mean, const T* var_sum,
                       int64_t count, double momentum, int64_t C) {
  for (int64_t c = 0; c < C; ++c) {
    if (running_mean) {
      running_mean[c] = static_cast<T>(momentum * mean[c] + (1 - momentum) * running_mean[c]);
    }
    if (running_var) {
      const double unbiased = var_sum[c] / static_cast<T>(count - 1);
      running_var[c] = static_cast<T>(momentum * unbiased + (1 - momentum) * running_var[c]);
    }
  }
}

namespace {

// y = row(x) per (n, c) row with the channel's alpha and beta; `row` is the affine map, or the
// affine map followed by ReLU.
template <typename T, typename Row>
void normalize_rows(T* y, const T* x, const T* mean, const T* invstd, const T* weight,
                    const T* bias, int64_t N, int64_t C, int64_t S, Row row) {
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t c = 0; c < C; ++c) {
      T alpha, beta;
      channel_affine(&alpha, &beta, mean[c], invstd[c], weight, bias, c);
      row(y + (n * C + c) * S, x + (n * C + c) * S, S, alpha, beta);
    }
  }
}
}  // namespace

template <typename T>
void bn_affine(T* alpha, T* beta, const T* mean, const T* invstd, const T* weight, const T* bias,
               int64_t C) {
  for (int64_t c = 0; c < C; ++c) channel_affine(alpha + c, beta + c, mean[c], invstd[c], weight, bias, c);
}

template <typename T>
void bn_normalize(T* y, const T* x, const T* mean, const T* invstd, const T* weight,
                  const T* bias, int64_t N, int64_t C, int64_t S) {
  normalize_rows(y, x, mean, invstd, weight, bias, N, C, S,
                 [](T* out, const T* in, int64_t n, T a, T b) { row_affine(out, in, n, a, b); });
}

template <typename T>
void bn_normalize_relu(T* y, const T* x, const T* mean, const T* invstd, const T* weight,
                       const T* bias, int64_t N, int64_t C, int64_t S) {
  normalize_rows(y, x, mean, invstd, weight, bias, N, C, S,
                 [](T* out, const T* in, int64_t n, T a, T b) { row_affine_relu(out, in, n, a, b); });
}

namespace {
template <typename T>
void channel_backward_sums(double* sum_dy, double* sum_dy_xmu, const T* dy, const T* x, T mean,
                           const T* relu_out, int64_t c, int64_t N, int64_t C, int64_t S) {
  double sum = 0, dot = 0;
  for (int64_t n = 0; n < N; ++n) {
    const int64_t row = (n * C + c) * S;
    if (relu_out) row_sum_dot_masked(dy + row, relu_out + row, x + row, S, mean, &sum, &dot);
    else row_sum_dot(dy + row, x + row, S, mean, &sum, &dot);
  }
  *sum_dy = sum;
  *sum_dy_xmu = dot;
}

}  // namespace

template <typename T>
void bn_backward_reduce(double* sum_dy, double* sum_dy_xmu, const T* dy, const T* x,
                        const T* mean, const T* relu_out, int64_t N, int64_t C, int64_t S) {
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < C; ++c) channel_backward_sums(sum_dy + c, sum_dy_xmu + c, dy, x, mean[c], relu_out, c, N, C, S);
}

template <typename T>
void bn_backward_input_train(T* dx, const T* dy, const T* x, const T* mean, const T* invstd,
                             const T* weight, const T* relu_out, const double* sum_dy,
                             const double* sum_dy_xmu, int64_t count, int64_t N, int64_t C,
                             int64_t S) {
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t c = 0; c < C; ++c) {
      input_grad_row(dx, dy, x, mean, invstd, weight, relu_out, sum_dy, sum_dy_xmu, count, n, c, C, S);
    }
  }
}

template <typename T>
void bn_backward_input_eval(T* dx, const T* dy, const T* invstd, const T* weight,
                            const T* relu_out, int64_t N, int64_t C, int64_t S) {
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t c = 0; c < C; ++c) {
      const T scale = invstd[c] * (weight ? weight[c] : T(1));
      const int64_t row = (n * C + c) * S;
      if (relu_out) {
        for (int64_t s = 0; s < S; ++s) dx[row + s] = relu_out[row + s] > T(0) ? dy[row + s] * scale : T(0);
      } else {
        row_affine(dx + row, dy + row, S, scale, T(0));
      }
    }
  }
}

template <typename T>
void bn_backward_params(T* dweight, T* dbias, const double* sum_dy, const double* sum_dy_xmu,
                        const T* invstd, int64_t C) {
  for (int64_t c = 0; c < C; ++c) {
    if (dweight) dweight[c] += static_cast<T>(sum_dy_xmu[c] * invstd[c]);
    if (dbias) dbias[c] += static_cast<T>(sum_dy[c]);
  }
}

#define BNLAB_INSTANTIATE(T)                                                                   \
  template void bn_stats<T>(T*, T*, const T*, int64_t, int64_t, int64_t);                      \
  template void bn_channel_sums<T>(double*, const T*, int64_t, int64_t, int64_t);              \
  template void bn_channel_squared_deviations<T>(double*, const T*, const T*, int64_t, int64_t, \
                                                 int64_t);                                     \
  template void bn_invstd_from_var_sum<T>(T*, const T*, int64_t, double, int64_t);             \
  template void bn_invstd_from_var<T>(T*, const T*, double, int64_t);                          \
  template void bn_update_running<T>(T*, T*, const T*, const T*, int64_t, double, int64_t);    \
  template void bn_affine<T>(T*, T*, const T*, const T*, const T*, const T*, int64_t);          \
  template void bn_normalize<T>(T*, const T*, const T*, const T*, const T*, const T*, int64_t, \
                                int64_t, int64_t);                                             \
  template void bn_normalize_relu<T>(T*, const T*, const T*, const T*, const T*, const T*,     \
                                     int64_t, int64_t, int64_t);                               \
  template void bn_backward_reduce<T>(double*, double*, const T*, const T*, const T*,         \
                                      const T*, int64_t, int64_t, int64_t);                    \
  template void bn_backward_input_train<T>(T*, const T*, const T*, const T*, const T*,         \
                                           const T*, const T*, const double*, const double*,   \
                                           int64_t, int64_t, int64_t, int64_t);                \
  template void bn_backward_input_eval<T>(T*, const T*, const T*, const T*, const T*, int64_t, \
                                          int64_t, int64_t);                                   \
  template void bn_backward_params<T>(T*, T*, const double*, const double*, const T*, int64_t);
BNLAB_INSTANTIATE(float)
BNLAB_INSTANTIATE(double)
#undef BNLAB_INSTANTIATE

}  // namespace bnlab::kernels
