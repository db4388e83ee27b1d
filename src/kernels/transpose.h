// Out-of-place matrix transpose, the layout change before a product that runs faster without a
// transposed operand (linear.cpp: fc1's x before y^T = w x^T).
#pragma once

#include <cstdint>

namespace bnlab::kernels {

// xt (cols, rows) = x (rows, cols)^T, both dense, on the calling thread. By blocks of 16 rows of x
// over a run of columns, so that x is read as 16 sequential streams and every tile of 16 x 16
// lands in xt as 16 rows of 16 (whole cache lines where rows is a multiple of 16).
template <typename T>
void transpose(T* xt, const T* x, int64_t rows, int64_t cols);

// One row of 16 x 16 tiles of floats: dst (tiles * 16 rows, ldd) = src (16 rows, lds)^T, in
// registers (x86/transpose_avx512.cpp). Returns false, having done nothing, on a CPU without
// AVX-512 (or with BNLAB_MAX_CPU_ISA below it).
bool transpose_tiles16_avx512(float* dst, int64_t ldd, const float* src, int64_t lds, int64_t tiles);

}  // namespace bnlab::kernels
