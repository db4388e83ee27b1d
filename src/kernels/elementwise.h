// Element-wise kernels: ReLU, inverted dropout, zeroing. Sizes: `count` elements.
#pragma once

#include <cstdint>

namespace bnlab::kernels {

// y = max(x, 0); NaN stays NaN, as PyTorch's relu, so divergence is seen downstream
template <typename T>
void relu_forward(T* y, const T* x, int64_t count);

// dx = dy where y > 0, else 0 (PyTorch's threshold_backward on the output)
template <typename T>
void relu_backward(T* dx, const T* dy, const T* y, int64_t count);

// Inverted dropout: keep[i] = u_i >= p, u_i uniform on [0, 1) with 24 bits, two per 64-bit draw;
// y = keep ? x * scale : 0, scale = 1/(1-p).
// The mask is a pure function of (key, i), so any thread split draws the same mask.
template <typename T>
void dropout_forward(T* y, uint8_t* keep, const T* x, float p, uint64_t key, int64_t count);

// dx = keep ? dy * scale : 0
template <typename T>
void dropout_backward(T* dx, const T* dy, const uint8_t* keep, float p, int64_t count);

// Whether every x[i] is finite, on bnlab's threads (the gradients after a backward, which one
// thread checked with std::isfinite element by element while the other waited).
bool all_finite(const float* x, int64_t count);

// x = 0 on bnlab's threads (the gradients before a backward: 4.8 MB for the seed network, which
// one thread filled while the other waited).
template <typename T>
void fill_zero(T* x, int64_t count);

}  // namespace bnlab::kernels
