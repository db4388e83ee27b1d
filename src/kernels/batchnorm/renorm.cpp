#include "kernels/batchnorm/renorm.h"

#include <algorithm>
#include <cmath>

namespace bnlab::kernels {

template <typename T>
void renorm_correction(T* r, T* d, const T* mean, const T* var_sum, int64_t count, const T* running_mean,
                       const T* running_var, double eps, double r_max, double d_max, int64_t C) {
  for (int64_t c = 0; c < C; ++c) {
    const double sigma_batch = std::sqrt(static_cast<double>(var_sum[c]) / static_cast<double>(count) + eps);
    const double sigma = std::sqrt(static_cast<double>(running_var[c]) + eps);
    r[c] = static_cast<T>(std::clamp(sigma_batch / sigma, 1.0 / r_max, r_max));
    const double shift = (static_cast<double>(mean[c]) - static_cast<double>(running_mean[c])) / sigma;
    d[c] = static_cast<T>(std::clamp(shift, -d_max, d_max));
  }
}

template <typename T>
void renorm_coefficients(T* invstd_r, T* weight_r, T* bias_d, const T* invstd, const T* r, const T* d,
                         const T* weight, const T* bias, int64_t C) {
  for (int64_t c = 0; c < C; ++c) {
    const T w = weight ? weight[c] : T(1);
    invstd_r[c] = invstd[c] * r[c];
    weight_r[c] = w * r[c];
    bias_d[c] = (bias ? bias[c] : T(0)) + w * d[c];
  }
}

template <typename T>
void renorm_backward_params(T* dweight, T* dbias, const double* sum_dy, const double* sum_dy_xmu, const T* invstd,
                            const T* r, const T* d, int64_t C) {
  for (int64_t c = 0; c < C; ++c) {
    if (dweight) {
      const double dxhat = sum_dy_xmu[c] * static_cast<double>(invstd[c]);  // BN's dweight
      dweight[c] += static_cast<T>(static_cast<double>(r[c]) * dxhat + static_cast<double>(d[c]) * sum_dy[c]);
    }
    if (dbias) dbias[c] += static_cast<T>(sum_dy[c]);
  }
}

#define BNLAB_INSTANTIATE(T)                                                                                  \
  template void renorm_correction<T>(T*, T*, const T*, const T*, int64_t, const T*, const T*, double, double, \
                                     double, int64_t);                                                        \
  template void renorm_coefficients<T>(T*, T*, T*, const T*, const T*, const T*, const T*, const T*, int64_t); \
  template void renorm_backward_params<T>(T*, T*, const double*, const double*, const T*, const T*, const T*, \
                                          int64_t);
BNLAB_INSTANTIATE(float)
BNLAB_INSTANTIATE(double)
#undef BNLAB_INSTANTIATE

}  // namespace bnlab::kernels
