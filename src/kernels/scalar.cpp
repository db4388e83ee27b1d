#include "kernels/scalar.h"

namespace bnlab::kernels {

template <typename T>
void scale_forward(T* y, const T* x, T a, int64_t count) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < count; ++i) y[i] = x[i] * a;
}

template <typename T>
void bias_forward(T* y, const T* x, T b, int64_t count) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < count; ++i) y[i] = x[i] + b;
}

template <typename T>
double batch_sum(const T* a, const T* b, int64_t n, int64_t size, double* partials) {
#pragma omp parallel for schedule(static)
  for (int64_t s = 0; s < n; ++s) {
    const T* as = a + s * size;
    double sum = 0;
    if (b) {
      const T* bs = b + s * size;
      for (int64_t i = 0; i < size; ++i) sum += static_cast<double>(as[i]) * bs[i];
    } else {
      for (int64_t i = 0; i < size; ++i) sum += as[i];
    }
    partials[s] = sum;
  }
  double total = 0;
  for (int64_t s = 0; s < n; ++s) total += partials[s];
  return total;
}

template void scale_forward<float>(float*, const float*, float, int64_t);
template void scale_forward<double>(double*, const double*, double, int64_t);
template void bias_forward<float>(float*, const float*, float, int64_t);
template void bias_forward<double>(double*, const double*, double, int64_t);
template double batch_sum<float>(const float*, const float*, int64_t, int64_t, double*);
template double batch_sum<double>(const double*, const double*, int64_t, int64_t, double*);

}  // namespace bnlab::kernels
