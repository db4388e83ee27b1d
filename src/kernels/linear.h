// Fully connected layer, y = x W^T + b as PyTorch's Linear.
// Legend: N batch, I input features, O output features. w (O, I), bias (O).
#pragma once

#include <cstdint>

namespace bnlab::kernels {

// y (N, O) = x (N, I) * w^T + bias. With scratch (linear_scratch_size floats for this N), as
// y^T = w x^T: x is transposed into the scratch and the product has no transposed operand, which
// oneDNN's sgemm runs 3-5x faster than x w^T at fc1's shapes (64 or 32 x 9216 by 9216 x 128 on an
// AMD EPYC Zen 5, 2 threads: 0.40 against 1.22 ms, 0.20 against 1.04 ms); it also spreads over
// the threads (our split, gemm_parallel: oneDNN's own threading of it allocates), where the
// transposed product ran on one. Without scratch, x w^T directly.
template <typename T>
void linear_forward(T* y, const T* x, const T* w, const T* bias, int64_t N, int64_t I, int64_t O,
                    T* scratch = nullptr);
inline int64_t linear_scratch_size(int64_t N, int64_t I, int64_t O) { return N * (I + O); }

// dx (N, I) = dy * w (skipped when null); dw (O, I) += dy^T * x; dbias (O) += sum_n dy (if set).
template <typename T>
void linear_backward(T* dx, T* dw, T* dbias, const T* dy, const T* x, const T* w, int64_t N,
                     int64_t I, int64_t O);

}  // namespace bnlab::kernels
