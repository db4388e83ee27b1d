// The input transforms of Winograd's F(2x2, 3x3), V = B^T d B and its gradient (winograd.h has
// the algebra). They touch every activation, so their float versions are compiled per
// instruction set (kernels/x86/multiversion.h): each is an inline template, instantiated inside a
// multi-versioned float function and once more, plainly, for double. Loops run over the tiles of
// one tile row, so that each statement vectorizes across tiles: the 16 positions of a tile are 16
// planes, and each loop writes at most four of them, through restrict parameters. Compiled with
// -ffp-contract=fast like the output transforms (src/kernels/kernels.cmake); adds and subtracts
// only, so contraction has nothing to fuse here.
#include "kernels/winograd/winograd.h"

#include <algorithm>
#include <type_traits>

#include "kernels/prefetch.h"
#include "kernels/x86/multiversion.h"

namespace bnlab::kernels {
namespace {

// The vertical (row) combination K of the transforms B^T (input) and B (input gradient).
template <int K, typename T>
BNLAB_INLINE T bt_row(T x0, T x1, T x2, T x3) {  // (B^T x)[K]
  if constexpr (K == 0) return x0 - x2;
  if constexpr (K == 1) return x1 + x2;
  if constexpr (K == 2) return x2 - x1;
  if constexpr (K == 3) return x1 - x3;
}
template <int K, typename T>
BNLAB_INLINE T b_row(T v0, T v1, T v2, T v3) {  // (B v)[K]
  if constexpr (K == 0) return v0;
  if constexpr (K == 1) return v1 - v2 + v3;
  if constexpr (K == 2) return -v0 + v1 + v2;
  if constexpr (K == 3) return -v3;
}

// Row K of V = B^T d B for one tile row, into its four planes o0..o3: the rows x0..x3 combined
// vertically, then horizontally, z -> (z0 - z2, z1 + z2, z2 - z1, z1 - z3). Restrict parameters
// (GCC honours restrict there) give four independent store streams, which vectorize.
template <int K, typename T>
BNLAB_INLINE void input_row(T* __restrict o0, T* __restrict o1, T* __restrict o2, T* __restrict o3,
                            const T* __restrict x0, const T* __restrict x1, const T* __restrict x2,
                            const T* __restrict x3, int64_t tiles_w) {
  for (int64_t j = 0; j < tiles_w; ++j) {
    const int64_t w = 2 * j;
    const T z0 = bt_row<K>(x0[w], x1[w], x2[w], x3[w]);
    const T z1 = bt_row<K>(x0[w + 1], x1[w + 1], x2[w + 1], x3[w + 1]);
    const T z2 = bt_row<K>(x0[w + 2], x1[w + 2], x2[w + 2], x3[w + 2]);
    const T z3 = bt_row<K>(x0[w + 3], x1[w + 3], x2[w + 3], x3[w + 3]);
    o0[j] = z0 - z2;
    o1[j] = z1 + z2;
    o2[j] = z2 - z1;
    o3[j] = z1 - z3;
  }
}

template <int K, typename T>
BNLAB_INLINE void input_rows(T* out, int64_t plane, const T* x, int64_t W, int64_t tiles_w) {
  T* o = out + 4 * K * plane;
  input_row<K>(o, o + plane, o + 2 * plane, o + 3 * plane, x, x + W, x + 2 * W, x + 3 * W, tiles_w);
}

// V (16, C, T) = B^T d B for the tiles at rows 2 th .. 2 th + 3 of each plane.
template <typename T>
BNLAB_INLINE void input_impl(T* V, const T* x, int64_t C, const WinogradTiles& t) {
  const int64_t tiles = t.count(), plane = winograd_plane_stride(C * tiles), H = t.in_height(), W = t.in_width();
  const PlanePrefetch ahead(H * W * static_cast<int64_t>(sizeof(T)), t.tiles_h);  // prefetch.h
  for (int64_t c = 0; c < C; ++c) {
    for (int64_t th = 0; th < t.tiles_h; ++th) {
      ahead.part_of_next(x, c, C, th);
      const T* rows = x + (c * H + 2 * th) * W;
      T* out = V + c * tiles + th * t.tiles_w;
      input_rows<0>(out, plane, rows, W, t.tiles_w);
      input_rows<1>(out, plane, rows, W, t.tiles_w);
      input_rows<2>(out, plane, rows, W, t.tiles_w);
      input_rows<3>(out, plane, rows, W, t.tiles_w);
    }
  }
}

// dx = the tiles B dV B^T of dV, summed where they overlap: vertically first (B over the rows k
// of each tile, u[r][l] for the tile's row r and plane column l), then horizontally, u -> B u,
// added into the tile's columns 2j .. 2j+3. Neighbouring tiles share two columns, so the adds go
// in two passes that never write one column twice: columns 2j, 2j+1, then 2j+2, 2j+3.
template <typename T>
BNLAB_INLINE void input_grad_impl(T* dx, const T* dV, int64_t C, const WinogradTiles& t) {
  constexpr int64_t kChunk = 64;  // tiles per pass (bounds the stack scratch)
  const int64_t tiles = t.count(), plane = winograd_plane_stride(C * tiles), H = t.in_height(), W = t.in_width();
  std::fill(dx, dx + C * H * W, T(0));
  T u[4][4][kChunk];
  for (int64_t c = 0; c < C; ++c) {
    for (int64_t th = 0; th < t.tiles_h; ++th) {
      for (int64_t j0 = 0; j0 < t.tiles_w; j0 += kChunk) {
        const int64_t len = std::min(kChunk, t.tiles_w - j0);
        const T* in = dV + c * tiles + th * t.tiles_w + j0;
        for (int l = 0; l < 4; ++l) {
          for (int64_t j = 0; j < len; ++j) {
            const T v0 = in[(0 + l) * plane + j], v1 = in[(4 + l) * plane + j];
            const T v2 = in[(8 + l) * plane + j], v3 = in[(12 + l) * plane + j];
            u[0][l][j] = b_row<0>(v0, v1, v2, v3);
            u[1][l][j] = b_row<1>(v0, v1, v2, v3);
            u[2][l][j] = b_row<2>(v0, v1, v2, v3);
            u[3][l][j] = b_row<3>(v0, v1, v2, v3);
          }
        }
        for (int r = 0; r < 4; ++r) {
          T* row = dx + (c * H + 2 * th + r) * W + 2 * j0;
          for (int64_t j = 0; j < len; ++j) {
            row[2 * j] += b_row<0>(u[r][0][j], u[r][1][j], u[r][2][j], u[r][3][j]);
            row[2 * j + 1] += b_row<1>(u[r][0][j], u[r][1][j], u[r][2][j], u[r][3][j]);
          }
          for (int64_t j = 0; j < len; ++j) {
            row[2 * j + 2] += b_row<2>(u[r][0][j], u[r][1][j], u[r][2][j], u[r][3][j]);
            row[2 * j + 3] += b_row<3>(u[r][0][j], u[r][1][j], u[r][2][j], u[r][3][j]);
          }
        }
      }
    }
  }
}

BNLAB_INLINE void input_f32_body(float* V, const float* x, int64_t C, const WinogradTiles& t) {
  input_impl(V, x, C, t);
}
BNLAB_MULTIVERSION(void, input_f32, (float* V, const float* x, int64_t C, const WinogradTiles& t),
                   (V, x, C, t), input_f32_body)
BNLAB_INLINE void input_grad_f32_body(float* dx, const float* dV, int64_t C, const WinogradTiles& t) {
  input_grad_impl(dx, dV, C, t);
}
BNLAB_MULTIVERSION(void, input_grad_f32, (float* dx, const float* dV, int64_t C, const WinogradTiles& t),
                   (dx, dV, C, t), input_grad_f32_body)

}  // namespace

// float runs the multi-versioned clones, double (the tests) the plain templates.
template <typename T>
void winograd_input(T* V, const T* x, int64_t C, const WinogradTiles& t) {
  if constexpr (std::is_same_v<T, float>) {
    if (!winograd_input_avx512(V, x, C, t)) input_f32(V, x, C, t);
  } else {
    input_impl(V, x, C, t);
  }
}
void winograd_input_portable(float* V, const float* x, int64_t C, const WinogradTiles& t) { input_f32(V, x, C, t); }
template <typename T>
void winograd_input_grad(T* dx, const T* dV, int64_t C, const WinogradTiles& t) {
  if constexpr (std::is_same_v<T, float>) {
    if (!winograd_input_grad_avx512(dx, dV, C, t)) input_grad_f32(dx, dV, C, t);
  } else {
    input_grad_impl(dx, dV, C, t);
  }
}
void winograd_input_grad_portable(float* dx, const float* dV, int64_t C, const WinogradTiles& t) {
  input_grad_f32(dx, dV, C, t);
}

#define BNLAB_INSTANTIATE(T) \
  template void winograd_input<T>(T*, const T*, int64_t, const WinogradTiles&); \
  template void winograd_input_grad<T>(T*, const T*, int64_t, const WinogradTiles&);
BNLAB_INSTANTIATE(float)
BNLAB_INSTANTIATE(double)
#undef BNLAB_INSTANTIATE

}  // namespace bnlab::kernels
