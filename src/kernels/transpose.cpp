#include "kernels/transpose.h"

#include <algorithm>
#include <type_traits>

namespace bnlab::kernels {

namespace {
constexpr int64_t kTile = 16;

// The tile at rows [r0, r1), columns [c0, c1), element by element.
template <typename T>
void transpose_scalar(T* xt, const T* x, int64_t rows, int64_t cols, int64_t r0, int64_t r1, int64_t c0,
                      int64_t c1) {
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t c = c0; c < c1; ++c) xt[c * rows + r] = x[r * cols + c];
}
}  // namespace

template <typename T>
void transpose(T* xt, const T* x, int64_t rows, int64_t cols) {
  for (int64_t r0 = 0; r0 < rows; r0 += kTile) {
    const int64_t r1 = std::min(rows, r0 + kTile);
    int64_t done = 0;  // columns [0, done) transposed by whole tiles
    if constexpr (std::is_same_v<T, float>) {
      const int64_t tiles = cols / kTile;
      if (r1 - r0 == kTile && transpose_tiles16_avx512(xt + r0, rows, x + r0 * cols, cols, tiles)) done = tiles * kTile;
    }
    for (int64_t c0 = done; c0 < cols; c0 += kTile) transpose_scalar(xt, x, rows, cols, r0, r1, c0, std::min(cols, c0 + kTile));
  }
}

template void transpose<float>(float*, const float*, int64_t, int64_t);
template void transpose<double>(double*, const double*, int64_t, int64_t);

}  // namespace bnlab::kernels
