#include "kernels/elementwise.h"

#include <cmath>

#include "bnlab/rng.h"

namespace bnlab::kernels {
namespace {
// PyTorch divides a tensor of ones by (1 - p) in the tensor's precision.
template <typename T>
T keep_scale(float p) { return T(1) / static_cast<T>(1 - static_cast<double>(p)); }
}  // namespace

template <typename T>
void relu_forward(T* y, const T* x, int64_t count) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < count; ++i) y[i] = x[i] < T(0) ? T(0) : x[i];  // NaN passes, as in PyTorch
}

template <typename T>
void relu_backward(T* dx, const T* dy, const T* y, int64_t count) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < count; ++i) dx[i] = y[i] > T(0) ? dy[i] : T(0);
}

template <typename T>
void dropout_forward(T* y, uint8_t* keep, const T* x, float p, uint64_t key, int64_t count) {
  const T scale = keep_scale<T>(p);
  // Two 24-bit uniforms from each 64-bit draw: element i uses half (i & 1) of draw i / 2.
  const uint32_t threshold = static_cast<uint32_t>(std::ceil(static_cast<double>(p) * 16777216.0));
  const int64_t pairs = (count + 1) / 2;
#pragma omp parallel for schedule(static)
  for (int64_t j = 0; j < pairs; ++j) {
    const uint64_t bits = random_bits(key, static_cast<uint64_t>(j));
    for (int64_t h = 0; h < 2 && 2 * j + h < count; ++h) {
      const int64_t i = 2 * j + h;
      const uint32_t u = static_cast<uint32_t>(bits >> (8 + 32 * h)) & 0xffffff;
      keep[i] = u >= threshold;  // uniform u / 2^24 >= p
      y[i] = keep[i] ? x[i] * scale : T(0);
    }
  }
}

template <typename T>
void dropout_backward(T* dx, const T* dy, const uint8_t* keep, float p, int64_t count) {
  const T scale = keep_scale<T>(p);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < count; ++i) dx[i] = keep[i] ? dy[i] * scale : T(0);
}

template void relu_forward<float>(float*, const float*, int64_t);
template void relu_forward<double>(double*, const double*, int64_t);
template void relu_backward<float>(float*, const float*, const float*, int64_t);
template void relu_backward<double>(double*, const double*, const double*, int64_t);
template void dropout_forward<float>(float*, uint8_t*, const float*, float, uint64_t, int64_t);
template void dropout_forward<double>(double*, uint8_t*, const double*, float, uint64_t, int64_t);
template void dropout_backward<float>(float*, const float*, const uint8_t*, float, int64_t);
template void dropout_backward<double>(double*, const double*, const uint8_t*, float, int64_t);

}  // namespace bnlab::kernels
