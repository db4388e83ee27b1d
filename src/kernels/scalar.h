// The kernels of the scalar layers (Scale, Bias): one learnable number applied to every value,
// and its gradient as a sum over the whole batch. The sums go per sample into `partials` and then
// in sample order, in double, so that their bits depend neither on the thread count nor on timing.
#pragma once

#include <cstdint>

namespace bnlab::kernels {

// y = x * a (count values)
template <typename T>
void scale_forward(T* y, const T* x, T a, int64_t count);

// y = x + b (count values)
template <typename T>
void bias_forward(T* y, const T* x, T b, int64_t count);

// sum over n samples of `size` values of a * b (b null: of a); partials: n doubles of scratch
template <typename T>
double batch_sum(const T* a, const T* b, int64_t n, int64_t size, double* partials);

}  // namespace bnlab::kernels
