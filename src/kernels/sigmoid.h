// Saturating element-wise activations: the logistic sigmoid and tanh, as PyTorch's Sigmoid and
// Tanh. Both backward passes use the saved output, as PyTorch's sigmoid_backward and
// tanh_backward do. Sizes: `count` elements.
#pragma once

#include <cstdint>

namespace bnlab::kernels {

// y = 1 / (1 + exp(-x))
template <typename T>
void sigmoid_forward(T* y, const T* x, int64_t count);

// dx = dy * (1 - y) * y   (d sigmoid / dx = sigmoid (1 - sigmoid))
template <typename T>
void sigmoid_backward(T* dx, const T* dy, const T* y, int64_t count);

// y = tanh(x)
template <typename T>
void tanh_forward(T* y, const T* x, int64_t count);

// dx = dy * (1 - y^2)   (d tanh / dx = 1 - tanh^2)
template <typename T>
void tanh_backward(T* dx, const T* dy, const T* y, int64_t count);

}  // namespace bnlab::kernels
