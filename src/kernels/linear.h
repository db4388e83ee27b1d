// Fully connected layer, y = x W^T + b as PyTorch's Linear.
// Legend: N batch, I input features, O output features. w (O, I), bias (O).
#pragma once

#include <cstdint>

namespace bnlab::kernels {

// y (N, O) = x (N, I) * w^T + bias
template <typename T>
void linear_forward(T* y, const T* x, const T* w, const T* bias, int64_t N, int64_t I, int64_t O);

// dx (N, I) = dy * w (skipped when null); dw (O, I) += dy^T * x; dbias (O) += sum_n dy (if set).
template <typename T>
void linear_backward(T* dx, T* dw, T* dbias, const T* dy, const T* x, const T* w, int64_t N,
                     int64_t I, int64_t O);

}  // namespace bnlab::kernels
