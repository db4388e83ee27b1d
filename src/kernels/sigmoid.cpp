#include "kernels/sigmoid.h"

#include <cmath>

namespace bnlab::kernels {

template <typename T>
void sigmoid_forward(T* y, const T* x, int64_t count) {
  // exp(-x) overflows to inf for x < -88 (float): 1 / (1 + inf) = 0, the right limit; NaN stays NaN.
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < count; ++i) y[i] = T(1) / (T(1) + std::exp(-x[i]));
}

template <typename T>
void sigmoid_backward(T* dx, const T* dy, const T* y, int64_t count) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < count; ++i) dx[i] = dy[i] * (T(1) - y[i]) * y[i];
}

template <typename T>
void tanh_forward(T* y, const T* x, int64_t count) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < count; ++i) y[i] = std::tanh(x[i]);
}

template <typename T>
void tanh_backward(T* dx, const T* dy, const T* y, int64_t count) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < count; ++i) dx[i] = dy[i] * (T(1) - y[i] * y[i]);
}

template void sigmoid_forward<float>(float*, const float*, int64_t);
template void sigmoid_forward<double>(double*, const double*, int64_t);
template void sigmoid_backward<float>(float*, const float*, const float*, int64_t);
template void sigmoid_backward<double>(double*, const double*, const double*, int64_t);
template void tanh_forward<float>(float*, const float*, int64_t);
template void tanh_forward<double>(double*, const double*, int64_t);
template void tanh_backward<float>(float*, const float*, const float*, int64_t);
template void tanh_backward<double>(double*, const double*, const double*, int64_t);

}  // namespace bnlab::kernels
