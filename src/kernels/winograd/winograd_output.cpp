// The output transforms of Winograd's F(2x2, 3x3), y = A^T M A with the convolution's epilogue,
// and its gradient (winograd.h has the algebra); per instruction set as the input transforms
// (winograd_input.cpp). Compiled with -ffp-contract=fast (src/kernels/kernels.cmake): when
// inference folds BN into the convolution, the epilogue's y * alpha + beta must be one fused
// multiply-add where the CPU has it, as bn_normalize's (kernels/batchnorm/rows.h), for the folded
// and unfolded networks to give the same bits; FpContract.WinogradOutputFusesTheEpilogue
// (src/kernels/fp_contract_test.cpp) fails if the flag is lost.
#include "kernels/winograd/winograd.h"

#include <algorithm>
#include <type_traits>

#include "kernels/prefetch.h"
#include "kernels/x86/multiversion.h"

namespace bnlab::kernels {
namespace {

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
  const int64_t y_plane = Pool ? tiles : t.out_height() * W;
  const PlanePrefetch ahead(y_plane * static_cast<int64_t>(sizeof(T)), Pool ? 1 : t.tiles_h);  // prefetch.h
  for (int64_t c = 0; c < C; ++c) {
    const T b = bias ? bias[c] : T(0);
    const T alpha = Affine ? e.scale[c] : T(1), beta = Affine ? e.shift[c] : T(0);
    if constexpr (Pool) {  // one maximum per tile, in tile order: all the channel's tiles in one loop
      ahead.part_of_next(y, c, C, 0);
      output_row<Affine, Relu, Pool>(y + c * tiles, static_cast<T*>(nullptr), M + c * tiles, p, tiles, b, alpha, beta);
      continue;
    }
    for (int64_t th = 0; th < t.tiles_h; ++th) {
      ahead.part_of_next(y, c, C, th);
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
  const int64_t dy_plane = t.out_height() * W;
  const PlanePrefetch ahead(dy_plane * static_cast<int64_t>(sizeof(T)), t.tiles_h);
  for (int64_t c = 0; c < C; ++c) {
    for (int64_t th = 0; th < t.tiles_h; ++th) {
      ahead.part_of_next(dy, c, C, th);
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

BNLAB_INLINE void output_f32_body(float* y, const float* M, const float* bias, int64_t C,
                                   const WinogradTiles& t, const ConvEpilogue<float>& e) {
  output_impl(y, M, bias, C, t, e);
}
BNLAB_MULTIVERSION(void, output_f32, (float* y, const float* M, const float* bias, int64_t C, const WinogradTiles& t, const ConvEpilogue<float>& e),
                   (y, M, bias, C, t, e), output_f32_body)
BNLAB_INLINE void output_grad_f32_body(float* dM, const float* dy, int64_t C, const WinogradTiles& t) {
  output_grad_impl(dM, dy, C, t);
}
BNLAB_MULTIVERSION(void, output_grad_f32, (float* dM, const float* dy, int64_t C, const WinogradTiles& t),
                   (dM, dy, C, t), output_grad_f32_body)

}  // namespace

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

#define BNLAB_INSTANTIATE(T) \
  template void winograd_output<T>(T*, const T*, const T*, int64_t, const WinogradTiles&, const ConvEpilogue<T>&); \
  template void winograd_output_grad<T>(T*, const T*, int64_t, const WinogradTiles&);
BNLAB_INSTANTIATE(float)
BNLAB_INSTANTIATE(double)
#undef BNLAB_INSTANTIATE

}  // namespace bnlab::kernels
