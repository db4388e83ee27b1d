// Per-sample-group normalization (groupnorm.h). Every loop runs over whole groups or whole
// channels on a static OpenMP share, each sum in one thread in index order: the bits do not depend
// on the thread count. Nothing allocates.
#include "kernels/groupnorm/groupnorm.h"

#include <algorithm>
#include <cmath>

namespace bnlab::kernels {

template <typename T>
void gn_stats(double* mean, double* invstd, double* var_sum, const T* x, double eps, int64_t N,
              int64_t C, int64_t S, int64_t G) {
  const int64_t M = (C / G) * S;
  // Two passes in double over the group's M contiguous values:
  //   mean = sum(x) / M,  var = sum((x - mean)^2) / M (biased, as PyTorch normalizes with),
  //   invstd = 1 / sqrt(var + eps)   (torch.nn.GroupNorm's definition).
#pragma omp parallel for schedule(static)
  for (int64_t ng = 0; ng < N * G; ++ng) {
    const T* xg = x + ng * M;
    double sum = 0;
    for (int64_t i = 0; i < M; ++i) sum += static_cast<double>(xg[i]);
    const double mu = sum / static_cast<double>(M);
    double squares = 0;
    for (int64_t i = 0; i < M; ++i) {
      const double d = static_cast<double>(xg[i]) - mu;
      squares += d * d;
    }
    mean[ng] = mu;
    invstd[ng] = 1.0 / std::sqrt(squares / static_cast<double>(M) + eps);
    if (var_sum) var_sum[ng] = squares;
  }
}

template <typename T>
void gn_normalize(T* y, const T* x, const double* mean, const double* invstd, const T* weight,
                  const T* bias, int64_t N, int64_t C, int64_t S, int64_t G) {
  const int64_t Cg = C / G;
  // Per (n, c): a = invstd[n, g] * w[c], b' = b[c] - mean[n, g] * a, y = x * a + b' in double
  // (the same value as (x - mean) * invstd * w + b; double keeps the cancellation exact).
  // Group by group, so that LayerNorm's (C*S, 1) runs one vector loop over its channels.
#pragma omp parallel for schedule(static)
  for (int64_t ng = 0; ng < N * G; ++ng) {
    const int64_t c0 = (ng % G) * Cg;
    const double inv = invstd[ng], mu = mean[ng];
    const T* xg = x + ng * Cg * S;
    T* yg = y + ng * Cg * S;
    for (int64_t c = 0; c < Cg; ++c) {
      const double a = inv * (weight ? static_cast<double>(weight[c0 + c]) : 1.0);
      const double shift = (bias ? static_cast<double>(bias[c0 + c]) : 0.0) - mu * a;
      for (int64_t s = 0; s < S; ++s) yg[c * S + s] = static_cast<T>(static_cast<double>(xg[c * S + s]) * a + shift);
    }
  }
}

template <typename T>
void gn_stats_from_running(double* mean, double* invstd, const T* running_mean, const T* running_var,
                           double eps, int64_t N, int64_t C) {
  // PyTorch's eval batch norm: invstd = 1 / sqrt(running_var + eps), per channel, every sample.
  for (int64_t nc = 0; nc < N * C; ++nc) {
    mean[nc] = static_cast<double>(running_mean[nc % C]);
    invstd[nc] = 1.0 / std::sqrt(static_cast<double>(running_var[nc % C]) + eps);
  }
}

namespace {

// partial[nc] = sum_s dy, partial[N C + nc] = sum_s dy * (x - mean) * invstd: per (n, c), the
// pieces of both the input and the parameter gradients.
template <typename T>
void channel_partials(double* partial, const T* dy, const T* x, const double* mean, const double* invstd,
                      int64_t N, int64_t C, int64_t S, int64_t G) {
  const int64_t Cg = C / G;
#pragma omp parallel for schedule(static)
  for (int64_t ng = 0; ng < N * G; ++ng) {
    const int64_t nc0 = (ng / G) * C + (ng % G) * Cg;
    for (int64_t nc = nc0; nc < nc0 + Cg; ++nc) {
      const T* dyr = dy + nc * S;
      const T* xr = x + nc * S;
      double sum_dy = 0, sum_dy_xmu = 0;
      for (int64_t s = 0; s < S; ++s) {
        sum_dy += static_cast<double>(dyr[s]);
        sum_dy_xmu += static_cast<double>(dyr[s]) * (static_cast<double>(xr[s]) - mean[ng]);
      }
      partial[nc] = sum_dy;
      partial[N * C + nc] = sum_dy_xmu * invstd[ng];
    }
  }
}

// dweight[c] += sum_n sum_s dy * xhat, dbias[c] += sum_n sum_s dy, n in order; blocks of
// channels on the threads, the samples' rows read one after another (LayerNorm has C = C*H*W).
template <typename T>
void param_grads(T* dweight, T* dbias, const double* partial, int64_t N, int64_t C) {
  if (!dweight && !dbias) return;
  constexpr int64_t kBlock = 256;
#pragma omp parallel for schedule(static)
  for (int64_t c0 = 0; c0 < C; c0 += kBlock) {
    const int64_t width = std::min(kBlock, C - c0);
    double dw[kBlock] = {}, db[kBlock] = {};
    for (int64_t n = 0; n < N; ++n) {
      const double* row_dy = partial + n * C + c0;
      const double* row_dy_xhat = partial + N * C + n * C + c0;
      for (int64_t i = 0; i < width; ++i) {
        db[i] += row_dy[i];
        dw[i] += row_dy_xhat[i];
      }
    }
    for (int64_t i = 0; i < width; ++i) {
      if (dweight) dweight[c0 + i] = static_cast<T>(static_cast<double>(dweight[c0 + i]) + dw[i]);
      if (dbias) dbias[c0 + i] = static_cast<T>(static_cast<double>(dbias[c0 + i]) + db[i]);
    }
  }
}

}  // namespace

template <typename T>
void gn_backward(T* dx, T* dweight, T* dbias, double* partial, const T* dy, const T* x,
                 const double* mean, const double* invstd, const T* weight, int64_t N, int64_t C,
                 int64_t S, int64_t G) {
  channel_partials(partial, dy, x, mean, invstd, N, C, S, G);
  param_grads(dweight, dbias, partial, N, C);
  if (!dx) return;
  const int64_t Cg = C / G;
  const double M = static_cast<double>(Cg * S);
  // Per group, with g = dy * w:  mean(g) = sum_c w[c] sum_s dy / M,
  // mean(g * xhat) = sum_c w[c] sum_s dy * xhat / M, then
  //   dx = invstd * (dy * w - mean(g) - xhat * mean(g * xhat))
  //      = dy * (invstd * w) + (x - mean) * (-invstd^2 * mean(g * xhat)) + (-invstd * mean(g))
  // per (n, c) coefficients in double (GroupNormBackward, group_norm_kernel.cpp, 1.13).
#pragma omp parallel for schedule(static)
  for (int64_t ng = 0; ng < N * G; ++ng) {
    const int64_t n = ng / G, c0 = (ng % G) * Cg;
    double mean_g = 0, mean_gx = 0;
    for (int64_t c = c0; c < c0 + Cg; ++c) {
      const double w = weight ? static_cast<double>(weight[c]) : 1.0;
      mean_g += w * partial[n * C + c];
      mean_gx += w * partial[N * C + n * C + c];
    }
    mean_g /= M;
    mean_gx /= M;
    const double inv = invstd[ng];
    const double cx = -inv * inv * mean_gx, c1 = -inv * mean_g - cx * mean[ng];
    for (int64_t c = c0; c < c0 + Cg; ++c) {
      const double a = inv * (weight ? static_cast<double>(weight[c]) : 1.0);
      const T* dyr = dy + (n * C + c) * S;
      const T* xr = x + (n * C + c) * S;
      T* dxr = dx + (n * C + c) * S;
      for (int64_t s = 0; s < S; ++s) {
        dxr[s] = static_cast<T>(static_cast<double>(dyr[s]) * a + static_cast<double>(xr[s]) * cx + c1);
      }
    }
  }
}

template <typename T>
void gn_backward_fixed_stats(T* dx, T* dweight, T* dbias, double* partial, const T* dy, const T* x,
                             const double* mean, const double* invstd, const T* weight, int64_t N,
                             int64_t C, int64_t S) {
  channel_partials(partial, dy, x, mean, invstd, N, C, S, C);
  param_grads(dweight, dbias, partial, N, C);
  if (!dx) return;
  // The statistics are constants: dx = dy * w[c] * invstd[n, c].
#pragma omp parallel for schedule(static)
  for (int64_t nc = 0; nc < N * C; ++nc) {
    const double a = invstd[nc] * (weight ? static_cast<double>(weight[nc % C]) : 1.0);
    for (int64_t s = 0; s < S; ++s) dx[nc * S + s] = static_cast<T>(static_cast<double>(dy[nc * S + s]) * a);
  }
}

template <typename T>
void in_update_running(T* running_mean, T* running_var, const double* mean, const double* var_sum,
                       double momentum, int64_t N, int64_t C, int64_t S) {
  // running = (1 - m) running + m * mean over the batch's samples of the sample statistic, the
  // variance unbiased: var_sum / (S - 1) (F.instance_norm, 1.13).
  for (int64_t c = 0; c < C; ++c) {
    double m = 0, v = 0;
    for (int64_t n = 0; n < N; ++n) {
      m += mean[n * C + c];
      v += var_sum[n * C + c] / static_cast<double>(S - 1);
    }
    m /= static_cast<double>(N);
    v /= static_cast<double>(N);
    running_mean[c] = static_cast<T>((1 - momentum) * static_cast<double>(running_mean[c]) + momentum * m);
    running_var[c] = static_cast<T>((1 - momentum) * static_cast<double>(running_var[c]) + momentum * v);
  }
}

#define BNLAB_GN_INSTANTIATE(T)                                                                          \
  template void gn_stats<T>(double*, double*, double*, const T*, double, int64_t, int64_t, int64_t,    \
                            int64_t);                                                                  \
  template void gn_normalize<T>(T*, const T*, const double*, const double*, const T*, const T*,        \
                                int64_t, int64_t, int64_t, int64_t);                                   \
  template void gn_stats_from_running<T>(double*, double*, const T*, const T*, double, int64_t,        \
                                         int64_t);                                                     \
  template void gn_backward<T>(T*, T*, T*, double*, const T*, const T*, const double*, const double*,  \
                               const T*, int64_t, int64_t, int64_t, int64_t);                          \
  template void gn_backward_fixed_stats<T>(T*, T*, T*, double*, const T*, const T*, const double*,     \
                                           const double*, const T*, int64_t, int64_t, int64_t);        \
  template void in_update_running<T>(T*, T*, const double*, const double*, double, int64_t, int64_t,   \
                                     int64_t);
BNLAB_GN_INSTANTIATE(float)
BNLAB_GN_INSTANTIATE(double)
#undef BNLAB_GN_INSTANTIATE

}  // namespace bnlab::kernels
