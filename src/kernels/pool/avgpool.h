// Average pooling over (N, C, H, W) as PyTorch's avg_pool2d with count_include_pad=True (windows
// of K x K every `stride`, zero padding counted: every window divides by K * K), and global
// average pooling (adaptive_avg_pool2d to 1 x 1: each plane's mean).
#pragma once

#include <cstdint>

#include "kernels/pool/pool.h"

namespace bnlab::kernels {

// y (N, C, Ho, Wo)
template <typename T>
void avgpool2d_forward(T* y, const T* x, const PoolGeometry& g, int64_t N);

// dx (N, C, H, W): each dy spread evenly over its window (overwrites dx)
template <typename T>
void avgpool2d_backward(T* dx, const T* dy, const PoolGeometry& g, int64_t N);

// y (planes) = the mean of each of `planes` runs of `size` values, summed in double
template <typename T>
void plane_mean_forward(T* y, const T* x, int64_t planes, int64_t size);

// dx (planes, size) = dy / size per plane
template <typename T>
void plane_mean_backward(T* dx, const T* dy, int64_t planes, int64_t size);

}  // namespace bnlab::kernels
