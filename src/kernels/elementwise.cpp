#include "kernels/elementwise.h"

#include <algorithm>
#include <cmath>

#include "bnlab/rng.h"
#include "kernels/vector_rows.h"

namespace bnlab::kernels {
namespace {
// PyTorch divides a tensor of ones by (1 - p) in the tensor's precision.
template <typename T>
T keep_scale(float p) { return T(1) / static_cast<T>(1 - static_cast<double>(p)); }
}  // namespace

// Element-wise loops run in fixed blocks, one row call each, so that the vector loops are long
// and the split among threads never depends on timing.
constexpr int64_t kBlock = 16384;

template <typename T>
void relu_forward(T* y, const T* x, int64_t count) {
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < count; b += kBlock) row_relu(y + b, x + b, std::min(kBlock, count - b));  // NaN passes
}

template <typename T>
void relu_backward(T* dx, const T* dy, const T* y, int64_t count) {
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < count; b += kBlock) row_relu_backward(dx + b, dy + b, y + b, std::min(kBlock, count - b));
}

template <typename T>
void dropout_forward(T* y, uint8_t* keep, const T* x, float p, uint64_t key, int64_t count) {
  const T scale = keep_scale<T>(p);
  // Two 24-bit uniforms from each 64-bit draw: element i uses half (i & 1) of draw i / 2.
  const uint32_t threshold = static_cast<uint32_t>(std::ceil(static_cast<double>(p) * 16777216.0));
  const int64_t pairs = count / 2, block = kBlock / 2;
#pragma omp parallel for schedule(static)
  for (int64_t j = 0; j < pairs; j += block) {
    row_dropout_pairs(y + 2 * j, keep + 2 * j, x + 2 * j, j, std::min(block, pairs - j), key, threshold, scale);
  }
  if (count % 2) {  // the last element: the first half of the last draw
    const int64_t i = count - 1;
    keep[i] = dropout_uniform(key, i) >= threshold;  // uniform u / 2^24 >= p
    y[i] = keep[i] ? x[i] * scale : T(0);
  }
}

template <typename T>
void dropout_backward(T* dx, const T* dy, const uint8_t* keep, float p, int64_t count) {
  const T scale = keep_scale<T>(p);
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < count; b += kBlock) row_dropout_backward(dx + b, dy + b, keep + b, std::min(kBlock, count - b), scale);
}

template <typename T>
void fill_zero(T* x, int64_t count) {
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < count; b += kBlock) std::fill(x + b, x + std::min(kBlock, count - b) + b, T(0));
}

bool all_finite(const float* x, int64_t count) {
  int64_t non_finite = 0;
#pragma omp parallel for schedule(static) reduction(+ : non_finite)
  for (int64_t b = 0; b < count; b += kBlock) non_finite += row_count_non_finite(x + b, std::min(kBlock, count - b));
  return non_finite == 0;
}

template void fill_zero<float>(float*, int64_t);
template void fill_zero<double>(double*, int64_t);
template void relu_forward<float>(float*, const float*, int64_t);
template void relu_forward<double>(double*, const double*, int64_t);
template void relu_backward<float>(float*, const float*, const float*, int64_t);
template void relu_backward<double>(double*, const double*, const double*, int64_t);
template void dropout_forward<float>(float*, uint8_t*, const float*, float, uint64_t, int64_t);
template void dropout_forward<double>(double*, uint8_t*, const double*, float, uint64_t, int64_t);
template void dropout_backward<float>(float*, const float*, const uint8_t*, float, int64_t);
template void dropout_backward<double>(double*, const double*, const uint8_t*, float, int64_t);

}  // namespace bnlab::kernels
