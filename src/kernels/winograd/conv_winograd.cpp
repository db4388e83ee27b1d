// Conv2d by Winograd's F(2x2, 3x3), one sample at a time per thread (see winograd.h for the
// algebra). Per sample, forward: V = input transform, 16 GEMMs M = U V, y = output transform.
// Backward: V again, dM = output-gradient transform of dy, then 16 GEMMs each for the filter
// gradient (dU += dM V^T) and the input gradient (dV = U^T dM), and dx = input-gradient transform.
// U = transform of the weights, once per call. Where padding or odd sizes leave the layer's
// planes different from the exactly tiled ones, they are copied into zero-padded scratch.
#include <omp.h>

#include <algorithm>
#include <type_traits>

#include "kernels/gemm.h"
#include "kernels/winograd/winograd.h"

namespace bnlab::kernels {
namespace {

constexpr int64_t P16 = kWinogradPositions;

WinogradTiles tiles_of(const ConvGeometry& g) {
  return {(g.out_height() + 1) / 2, (g.out_width() + 1) / 2};
}

// Sizes and plane strides of one convolution's transformed tensors.
struct Plan {
  WinogradTiles t;
  int64_t Co, Ci, T_, Ho, Wo;
  int64_t su, sv, sm;  // plane strides of U (Co, Ci), V (Ci, T), M (Co, T)
};

Plan plan_of(const ConvGeometry& g) {
  Plan p{tiles_of(g), g.out_channels, g.in_channels, 0, g.out_height(), g.out_width(), 0, 0, 0};
  p.T_ = p.t.count();
  p.su = winograd_plane_stride(p.Co * p.Ci);
  p.sv = winograd_plane_stride(p.Ci * p.T_);
  p.sm = winograd_plane_stride(p.Co * p.T_);
  return p;
}

// Scratch: the weights' transform U (16, Co, Ci), shared, then per thread V (16, Ci, T), which
// backward reuses for dV, M (16, Co, T), which backward uses for dM, and one zero-padded plane
// set for whichever input, output or gradient needs one.
struct Layout {
  int64_t u, v, m, plane, per_thread;
};

Layout layout_of(const ConvGeometry& g) {
  const Plan p = plan_of(g);
  const WinogradTiles& t = p.t;
  Layout l{};
  l.u = P16 * p.su;
  l.v = P16 * p.sv;
  l.m = P16 * p.sm;
  l.plane = std::max(g.in_channels * t.in_height() * t.in_width(), g.out_channels * t.out_height() * t.out_width());
  l.per_thread = l.v + l.m + l.plane;
  return l;
}

// padded (C, Hp, Wp) = zeros with src (C, H, W) at (top, left), clipped to the padded plane.
template <typename T>
void pad_copy(T* padded, int64_t Hp, int64_t Wp, const T* src, int64_t C, int64_t H, int64_t W, int64_t top,
              int64_t left) {
  std::fill(padded, padded + C * Hp * Wp, T(0));
  const int64_t rows = std::min(H, Hp - top), cols = std::min(W, Wp - left);
  for (int64_t c = 0; c < C; ++c)
    for (int64_t h = 0; h < rows; ++h)
      std::copy(src + (c * H + h) * W, src + (c * H + h) * W + cols, padded + (c * Hp + h + top) * Wp + left);
}

// dst (C, H, W) = the window of src (C, Hp, Wp) at (top, left).
template <typename T>
void crop_copy(T* dst, int64_t H, int64_t W, const T* src, int64_t C, int64_t Hp, int64_t Wp, int64_t top,
               int64_t left) {
  for (int64_t c = 0; c < C; ++c)
    for (int64_t h = 0; h < H; ++h)
      std::copy(src + (c * Hp + h + top) * Wp + left, src + (c * Hp + h + top) * Wp + left + W, dst + (c * H + h) * W);
}

// V of sample x_n (Ci, H, W), through the padded plane if needed.
template <typename T>
void transform_input(T* V, T* plane, const T* x_n, const ConvGeometry& g, const WinogradTiles& t) {
  const T* in = x_n;
  if (!winograd_exact(g)) {
    pad_copy(plane, t.in_height(), t.in_width(), x_n, g.in_channels, g.height, g.width, g.padding, g.padding);
    in = plane;
  }
  winograd_input(V, in, g.in_channels, t);
}

// C (m, n) += A (m, k) B^T for B (n, k), all rows packed: the filter gradient's product, whose
// operands both run along the tiles. On AVX-512, dot products (gemm.h) instead of the BLAS, which
// is at its slowest with that layout.
template <typename T>
void accumulate_nt(int64_t m, int64_t n, int64_t k, const T* A, const T* B, T* C) {
  if constexpr (std::is_same_v<T, float>) {
    if (gemm_nt_accumulate_avx512(m, n, k, A, k, B, k, C, n)) return;
  }
  gemm(Trans::No, Trans::Yes, m, n, k, T(1), A, k, B, k, T(1), C, n);
}

}  // namespace

bool winograd_exact(const ConvGeometry& g) {
  return g.padding == 0 && g.out_height() % 2 == 0 && g.out_width() % 2 == 0;
}

int64_t winograd_scratch_size(const ConvGeometry& g, int threads) {
  const Layout l = layout_of(g);
  return l.u + threads * l.per_thread;
}

int64_t winograd_weight_scratch_size(const ConvGeometry& g, int threads) {
  return threads * layout_of(g).u;  // a partial dU (the size of U) per thread
}

template <typename T>
void winograd_conv2d_forward(T* y, const T* x, const T* w, const T* bias, T* scratch,
                             const ConvGeometry& g, int64_t N, int threads, const ConvEpilogue<T>& epilogue) {
  const Layout l = layout_of(g);
  const Plan p = plan_of(g);  // plain copies below: clang's OpenMP cannot capture structured bindings
  const WinogradTiles t = p.t;
  const int64_t Co = p.Co, Ci = p.Ci, T_ = p.T_, Ho = p.Ho, Wo = p.Wo, su = p.su, sv = p.sv, sm = p.sm;
  T* U = scratch;
  winograd_filter(U, w, Co, Ci);
#pragma omp parallel num_threads(threads)
  {
    T* V = scratch + l.u + omp_get_thread_num() * l.per_thread;
    T* M = V + l.v;
    T* plane = M + l.m;
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      transform_input(V, plane, x + n * Ci * g.height * g.width, g, t);
      for (int64_t xi = 0; xi < P16; ++xi) {
        gemm(Trans::No, Trans::No, Co, T_, Ci, T(1), U + xi * su, Ci, V + xi * sv, T_, T(0),
             M + xi * sm, T_);
      }
      const int64_t out_size = epilogue.maxpool2x2 ? Co * T_ : Co * Ho * Wo;  // pooled: a maximum per tile
      T* y_n = y + n * out_size;
      if (winograd_exact(g)) {
        winograd_output(y_n, M, bias, Co, t, epilogue);
      } else {
        winograd_output(plane, M, bias, Co, t, epilogue);
        crop_copy(y_n, Ho, Wo, plane, Co, t.out_height(), t.out_width(), 0, 0);
      }
    }
  }
}

template <typename T>
void winograd_conv2d_backward(T* dx, T* dw, const T* dy, const T* x, const T* w, T* scratch,
                              T* dw_scratch, double* plane_sums, const ConvGeometry& g, int64_t N,
                              int threads) {
  const Layout l = layout_of(g);
  const Plan p = plan_of(g);  // plain copies below: clang's OpenMP cannot capture structured bindings
  const WinogradTiles t = p.t;
  const int64_t Co = p.Co, Ci = p.Ci, T_ = p.T_, Ho = p.Ho, Wo = p.Wo, su = p.su, sv = p.sv, sm = p.sm;
  const int64_t usize = P16 * su;
  T* U = scratch;
  winograd_filter(U, w, Co, Ci);
  int used = 1;
#pragma omp parallel num_threads(threads)
  {
    const int id = omp_get_thread_num();
#pragma omp single
    used = omp_get_num_threads();
    T* V = scratch + l.u + id * l.per_thread;
    T* M = V + l.v;
    T* plane = M + l.m;
    T* dU = dw_scratch + id * usize;
    std::fill(dU, dU + usize, T(0));
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      transform_input(V, plane, x + n * Ci * g.height * g.width, g, t);
      const T* dy_n = dy + n * Co * Ho * Wo;
      if (winograd_exact(g)) {
        winograd_output_grad(M, dy_n, Co, t);
      } else {  // odd output sizes: the missing row or column of the last tiles is zero
        pad_copy(plane, t.out_height(), t.out_width(), dy_n, Co, Ho, Wo, 0, 0);
        winograd_output_grad(M, plane, Co, t);
      }
      if (plane_sums) output_plane_sums(plane_sums + n * Co, dy_n, Co, Ho * Wo);
      // dU_xi (Co, Ci) += dM_xi (Co, T) V_xi^T (T, Ci)
      for (int64_t xi = 0; xi < P16; ++xi) accumulate_nt(Co, Ci, T_, M + xi * sm, V + xi * sv, dU + xi * su);
      if (!dx) continue;
      // dV_xi (Ci, T) = U_xi^T (Ci, Co) dM_xi (Co, T), into V's place
      for (int64_t xi = 0; xi < P16; ++xi) {
        gemm(Trans::Yes, Trans::No, Ci, T_, Co, T(1), U + xi * su, Ci, M + xi * sm, T_, T(0),
             V + xi * sv, T_);
      }
      T* dx_n = dx + n * Ci * g.height * g.width;
      if (winograd_exact(g)) {
        winograd_input_grad(dx_n, V, Ci, t);
      } else {
        winograd_input_grad(plane, V, Ci, t);
        crop_copy(dx_n, g.height, g.width, plane, Ci, t.in_height(), t.in_width(), g.padding, g.padding);
      }
    }
  }
  // Fixed-order sum of the per-thread partials, then dw += G^T dU G.
  for (int k = 1; k < used; ++k) {
    const T* part = dw_scratch + k * usize;
    for (int64_t j = 0; j < usize; ++j) dw_scratch[j] += part[j];
  }
  winograd_filter_grad(dw, dw_scratch, Co, Ci);
}

#define BNLAB_INSTANTIATE(T)                                                                         \
  template void winograd_conv2d_forward<T>(T*, const T*, const T*, const T*, T*, const ConvGeometry&, \
                                           int64_t, int, const ConvEpilogue<T>&);                    \
  template void winograd_conv2d_backward<T>(T*, T*, const T*, const T*, const T*, T*, T*, double*,    \
                                            const ConvGeometry&, int64_t, int);
BNLAB_INSTANTIATE(float)
BNLAB_INSTANTIATE(double)
#undef BNLAB_INSTANTIATE

}  // namespace bnlab::kernels
