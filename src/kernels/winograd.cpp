// The transforms of Winograd's F(2x2, 3x3); see winograd.h for the algebra. The input and output
// transforms touch every activation, so their float versions are compiled per instruction set
// (kernels/multiversion.h): each is an inline template, instantiated inside a multi-versioned
// float function and once more, plainly, for double. Loops run over the tiles of one tile row,
// so that each statement vectorizes across tiles: the 16 positions of a tile are 16 planes, and
// each loop writes at most four of them, through restrict parameters.
#include "kernels/winograd.h"

#include <algorithm>
#include <type_traits>

#include "kernels/multiversion.h"

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
  for (int64_t c = 0; c < C; ++c) {
    for (int64_t th = 0; th < t.tiles_h; ++th) {
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

// One tile row of y = A^T M A: along a direction, m -> (m0 + m1 + m2, m1 - m2 - m3). The 16
// planes of M are p apart. Then the epilogue, chosen at compile time so that the loop has no
// branches: y * alpha + beta (one rounding where the CPU has FMA, as bn_normalize), ReLU, and the
// tile's maximum (a 2x2 pooling window), scanned in PyTorch's order. Written out, and restrict as
// parameters (GCC honours it there), so that the loop over tiles vectorizes.
template <bool Affine, bool Relu, bool Pool, typename T>
BNLAB_INLINE void output_row(T* __restrict row0, T* __restrict row1, const T* __restrict m, int64_t p,
                             int64_t tiles_w, T b, T alpha, T beta) {
  auto finish = [&](T v) {
    if constexpr (Affine) v = v * alpha + beta;
    if constexpr (Relu) v = v < T(0) ? T(0) : v;  // NaN passes, as PyTorch's relu
    return v;
  };
  auto later_wins = [](T best, T next) { return !(best != best) && (next > best || next != next); };
  for (int64_t j = 0; j < tiles_w; ++j) {
    const T a0 = m[j] + m[p + j] + m[2 * p + j], e0 = m[p + j] - m[2 * p + j] - m[3 * p + j];
    const T a1 = m[4 * p + j] + m[5 * p + j] + m[6 * p + j], e1 = m[5 * p + j] - m[6 * p + j] - m[7 * p + j];
    const T a2 = m[8 * p + j] + m[9 * p + j] + m[10 * p + j], e2 = m[9 * p + j] - m[10 * p + j] - m[11 * p + j];
    const T a3 = m[12 * p + j] + m[13 * p + j] + m[14 * p + j], e3 = m[13 * p + j] - m[14 * p + j] - m[15 * p + j];
    // Rounded to T here, as a layer-by-layer run stores the convolution's output.
    const T y00 = finish(a0 + a1 + a2 + b), y01 = finish(e0 + e1 + e2 + b);
    const T y10 = finish(a1 - a2 - a3 + b), y11 = finish(e1 - e2 - e3 + b);
    if constexpr (Pool) {
      T best = y00;
      best = later_wins(best, y01) ? y01 : best;
      best = later_wins(best, y10) ? y10 : best;
      best = later_wins(best, y11) ? y11 : best;
      row0[j] = best;
    } else {
      row0[2 * j] = y00;
      row0[2 * j + 1] = y01;
      row1[2 * j] = y10;
      row1[2 * j + 1] = y11;
    }
  }
}

template <bool Affine, bool Relu, bool Pool, typename T>
BNLAB_INLINE void output_planes(T* y, const T* M, const T* bias, int64_t C, const WinogradTiles& t,
                                const ConvEpilogue<T>& e) {
  const int64_t tiles = t.count(), p = winograd_plane_stride(C * tiles), W = t.out_width();
  for (int64_t c = 0; c < C; ++c) {
    const T b = bias ? bias[c] : T(0);
    const T alpha = Affine ? e.scale[c] : T(1), beta = Affine ? e.shift[c] : T(0);
    if constexpr (Pool) {  // one maximum per tile, in tile order: all the channel's tiles in one loop
      output_row<Affine, Relu, Pool>(y + c * tiles, static_cast<T*>(nullptr), M + c * tiles, p, tiles, b, alpha, beta);
      continue;
    }
    for (int64_t th = 0; th < t.tiles_h; ++th) {
      T* row0 = y + (c * t.out_height() + 2 * th) * W;
      output_row<Affine, Relu, Pool>(row0, row0 + W, M + c * tiles + th * t.tiles_w, p, t.tiles_w, b, alpha, beta);
    }
  }
}

template <typename T>
BNLAB_INLINE void output_impl(T* y, const T* M, const T* bias, int64_t C, const WinogradTiles& t,
                              const ConvEpilogue<T>& e) {
  const int variant = (e.scale ? 4 : 0) + (e.relu ? 2 : 0) + (e.maxpool2x2 ? 1 : 0);
  switch (variant) {
    case 0: output_planes<false, false, false>(y, M, bias, C, t, e); break;
    case 1: output_planes<false, false, true>(y, M, bias, C, t, e); break;
    case 2: output_planes<false, true, false>(y, M, bias, C, t, e); break;
    case 3: output_planes<false, true, true>(y, M, bias, C, t, e); break;
    case 4: output_planes<true, false, false>(y, M, bias, C, t, e); break;
    case 5: output_planes<true, false, true>(y, M, bias, C, t, e); break;
    case 6: output_planes<true, true, false>(y, M, bias, C, t, e); break;
    default: output_planes<true, true, true>(y, M, bias, C, t, e); break;
  }
}

// Row K of dM = A dY A^T for one tile row, into its four planes. Along a direction,
// (p, q) -> (p, p + q, p - q, -q); row K of A dY is (top, top + bottom, top - bottom, -bottom)[K].
// One function per row of planes, with restrict parameters: four store streams GCC can vectorize.
template <int K, typename T>
BNLAB_INLINE void output_grad_row(T* __restrict o0, T* __restrict o1, T* __restrict o2, T* __restrict o3,
                                  const T* __restrict row0, const T* __restrict row1, int64_t tiles_w) {
  auto combine = [](T top, T bottom) {
    if constexpr (K == 0) return top;
    if constexpr (K == 1) return top + bottom;
    if constexpr (K == 2) return top - bottom;
    if constexpr (K == 3) return -bottom;
  };
  for (int64_t j = 0; j < tiles_w; ++j) {
    const T p = combine(row0[2 * j], row1[2 * j]), q = combine(row0[2 * j + 1], row1[2 * j + 1]);
    o0[j] = p;
    o1[j] = p + q;
    o2[j] = p - q;
    o3[j] = -q;
  }
}

template <int K, typename T>
BNLAB_INLINE void output_grad_rows(T* out, int64_t plane, const T* row0, const T* row1, int64_t tiles_w) {
  T* o = out + 4 * K * plane;
  output_grad_row<K>(o, o + plane, o + 2 * plane, o + 3 * plane, row0, row1, tiles_w);
}

template <typename T>
BNLAB_INLINE void output_grad_impl(T* dM, const T* dy, int64_t C, const WinogradTiles& t) {
  const int64_t tiles = t.count(), plane = winograd_plane_stride(C * tiles), W = t.out_width();
  for (int64_t c = 0; c < C; ++c) {
    for (int64_t th = 0; th < t.tiles_h; ++th) {
      const T* row0 = dy + (c * t.out_height() + 2 * th) * W;
      const T* row1 = row0 + W;
      T* out = dM + c * tiles + th * t.tiles_w;
      output_grad_rows<0>(out, plane, row0, row1, t.tiles_w);
      output_grad_rows<1>(out, plane, row0, row1, t.tiles_w);
      output_grad_rows<2>(out, plane, row0, row1, t.tiles_w);
      output_grad_rows<3>(out, plane, row0, row1, t.tiles_w);
    }
  }
}

BNLAB_MULTIVERSION void input_f32(float* V, const float* x, int64_t C, const WinogradTiles& t) {
  input_impl(V, x, C, t);
}
BNLAB_MULTIVERSION void input_grad_f32(float* dx, const float* dV, int64_t C, const WinogradTiles& t) {
  input_grad_impl(dx, dV, C, t);
}
BNLAB_MULTIVERSION void output_f32(float* y, const float* M, const float* bias, int64_t C,
                                   const WinogradTiles& t, const ConvEpilogue<float>& e) {
  output_impl(y, M, bias, C, t, e);
}
BNLAB_MULTIVERSION void output_grad_f32(float* dM, const float* dy, int64_t C, const WinogradTiles& t) {
  output_grad_impl(dM, dy, C, t);
}

}  // namespace

// U = G g G^T: along a direction, g -> (g0, (g0 + g1 + g2) / 2, (g0 - g1 + g2) / 2, g2).
template <typename T>
void winograd_filter(T* U, const T* w, int64_t Co, int64_t Ci) {
  const int64_t plane = winograd_plane_stride(Co * Ci);
  const int64_t filters = Co * Ci;
  for (int64_t f = 0; f < filters; ++f) {
    const T* g = w + 9 * f;
    T rows[4][3];
    for (int s = 0; s < 3; ++s) {
      rows[0][s] = g[s];
      rows[1][s] = (g[s] + g[3 + s] + g[6 + s]) * T(0.5);
      rows[2][s] = (g[s] - g[3 + s] + g[6 + s]) * T(0.5);
      rows[3][s] = g[6 + s];
    }
    for (int k = 0; k < 4; ++k) {
      const T* r = rows[k];
      U[(4 * k + 0) * plane + f] = r[0];
      U[(4 * k + 1) * plane + f] = (r[0] + r[1] + r[2]) * T(0.5);
      U[(4 * k + 2) * plane + f] = (r[0] - r[1] + r[2]) * T(0.5);
      U[(4 * k + 3) * plane + f] = r[2];
    }
  }
}

// dg = G^T dU G: along a direction, u -> (u0 + (u1 + u2) / 2, (u1 - u2) / 2, (u1 + u2) / 2 + u3).
template <typename T>
void winograd_filter_grad(T* dw, const T* dU, int64_t Co, int64_t Ci) {
  const int64_t plane = winograd_plane_stride(Co * Ci);
  const int64_t filters = Co * Ci;
  for (int64_t f = 0; f < filters; ++f) {
    T cols[4][3];  // dU G: each row k of the 4x4 reduced to 3 columns
    for (int k = 0; k < 4; ++k) {
      const T u0 = dU[(4 * k + 0) * plane + f], u1 = dU[(4 * k + 1) * plane + f];
      const T u2 = dU[(4 * k + 2) * plane + f], u3 = dU[(4 * k + 3) * plane + f];
      cols[k][0] = u0 + (u1 + u2) * T(0.5);
      cols[k][1] = (u1 - u2) * T(0.5);
      cols[k][2] = (u1 + u2) * T(0.5) + u3;
    }
    T* g = dw + 9 * f;
    for (int s = 0; s < 3; ++s) {
      g[s] += cols[0][s] + (cols[1][s] + cols[2][s]) * T(0.5);
      g[3 + s] += (cols[1][s] - cols[2][s]) * T(0.5);
      g[6 + s] += (cols[1][s] + cols[2][s]) * T(0.5) + cols[3][s];
    }
  }
}

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
template <typename T>
void winograd_output(T* y, const T* M, const T* bias, int64_t C, const WinogradTiles& t, const ConvEpilogue<T>& e) {
  if constexpr (std::is_same_v<T, float>) {
    if (!winograd_output_avx512(y, M, bias, C, t, e)) output_f32(y, M, bias, C, t, e);
  } else {
    output_impl(y, M, bias, C, t, e);
  }
}
void winograd_output_portable(float* y, const float* M, const float* bias, int64_t C, const WinogradTiles& t,
                              const ConvEpilogue<float>& e) {
  output_f32(y, M, bias, C, t, e);
}
template <typename T>
void winograd_output_grad(T* dM, const T* dy, int64_t C, const WinogradTiles& t) {
  if constexpr (std::is_same_v<T, float>) {
    if (!winograd_output_grad_avx512(dM, dy, C, t)) output_grad_f32(dM, dy, C, t);
  } else {
    output_grad_impl(dM, dy, C, t);
  }
}
void winograd_output_grad_portable(float* dM, const float* dy, int64_t C, const WinogradTiles& t) {
  output_grad_f32(dM, dy, C, t);
}

#define BNLAB_INSTANTIATE(T)                                                                          \
  template void winograd_filter<T>(T*, const T*, int64_t, int64_t);                                   \
  template void winograd_filter_grad<T>(T*, const T*, int64_t, int64_t);                              \
  template void winograd_input<T>(T*, const T*, int64_t, const WinogradTiles&);                       \
  template void winograd_input_grad<T>(T*, const T*, int64_t, const WinogradTiles&);                  \
  template void winograd_output<T>(T*, const T*, const T*, int64_t, const WinogradTiles&,             \
                                   const ConvEpilogue<T>&);                                          \
  template void winograd_output_grad<T>(T*, const T*, int64_t, const WinogradTiles&);
BNLAB_INSTANTIATE(float)
BNLAB_INSTANTIATE(double)
#undef BNLAB_INSTANTIATE

}  // namespace bnlab::kernels
