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

// One (H, W) plane of the two above for the 2x2, stride-2 pool without padding (AVX-512 where
// the CPU has it, the portable loops otherwise: the same bits): what they run per plane, and what
// batch norm's fused BN+ReLU+pool kernels (batchnorm.h) run on a plane held in cache.
void maxpool2x2_plane_forward(float* y, int32_t* argmax, const float* x, int64_t H, int64_t W);
void maxpool2x2_plane_backward(float* dx, const float* dy, const int32_t* argmax, int64_t H, int64_t W);

}  // namespace bnlab::kernels
