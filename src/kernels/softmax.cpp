#include "kernels/softmax.h"

#include <cmath>

namespace bnlab::kernels {

template <typename T>
void log_softmax_forward(T* y, const T* x, int64_t N, int64_t K) {
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const T* in = x + n * K;
    T* out = y + n * K;
    T max = in[0];
    for (int64_t k = 1; k < K; ++k) max = in[k] > max ? in[k] : max;
    T sum = 0;
    for (int64_t k = 0; k < K; ++k) sum += std::exp(in[k] - max);
    const T shift = max + std::log(sum);
    for (int64_t k = 0; k < K; ++k) out[k] = in[k] - shift;
  }
}

template <typename T>
void log_softmax_backward(T* dx, const T* dy, const T* y, int64_t N, int64_t K) {
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    T sum = 0;
    for (int64_t k = 0; k < K; ++k) sum += dy[n * K + k];
    for (int64_t k = 0; k < K; ++k) dx[n * K + k] = dy[n * K + k] - std::exp(y[n * K + k]) * sum;
  }
}

template <typename T>
double nll_loss(T* dlogp, const T* logp, const uint8_t* labels, int64_t N, int64_t K) {
  double total = 0;
  for (int64_t n = 0; n < N; ++n) total -= logp[n * K + labels[n]];
  if (dlogp) {
    const T g = T(-1) / static_cast<T>(N);
    for (int64_t i = 0; i < N * K; ++i) dlogp[i] = T(0);
    for (int64_t n = 0; n < N; ++n) dlogp[n * K + labels[n]] = g;
  }
  return total / static_cast<double>(N);
}

template void log_softmax_forward<float>(float*, const float*, int64_t, int64_t);
template void log_softmax_forward<double>(double*, const double*, int64_t, int64_t);
template void log_softmax_backward<float>(float*, const float*, const float*, int64_t, int64_t);
template void log_softmax_backward<double>(double*, const double*, const double*, int64_t, int64_t);
template double nll_loss<float>(float*, const float*, const uint8_t*, int64_t, int64_t);
template double nll_loss<double>(double*, const double*, const uint8_t*, int64_t, int64_t);

}  // namespace bnlab::kernels
