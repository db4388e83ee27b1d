// Max pooling over (N, C, H, W) as PyTorch's max_pool2d: windows of K x K every `stride`,
// implicit -inf padding; ties and NaN resolve as PyTorch does (first maximum, NaN wins).
#pragma once

#include <cstdint>

namespace bnlab::kernels {

struct PoolGeometry {
  int64_t channels, height, width;
  int64_t kernel, stride, padding;

  int64_t out_height() const { return (height + 2 * padding - kernel) / stride + 1; }
  int64_t out_width() const { return (width + 2 * padding - kernel) / stride + 1; }
};

// y (N, C, Ho, Wo); argmax (N, C, Ho, Wo) holds the flat index h*W + w of each maximum (null:
// not wanted, inference).
template <typename T>
void maxpool2d_forward(T* y, int32_t* argmax, const T* x, const PoolGeometry& g, int64_t N);

// dx (N, C, H, W) = dy routed to each window's maximum (overwrites dx).
template <typename T>
void maxpool2d_backward(T* dx, const T* dy, const int32_t* argmax, const PoolGeometry& g,
                        int64_t N);

}  // namespace bnlab::kernels
