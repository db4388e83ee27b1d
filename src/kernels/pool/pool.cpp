#include "kernels/pool/pool.h"

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "kernels/vector_rows.h"

namespace bnlab::kernels {

namespace {
// dx of one plane (plane_in values) = 0, plus each window's gradient at its maximum.
template <typename T>
void plane_backward(T* dx, const T* dy, const int32_t* idx, int64_t plane_in, int64_t plane_out) {
  std::fill(dx, dx + plane_in, T(0));
  for (int64_t p = 0; p < plane_out; ++p) dx[idx[p]] += dy[p];
}

bool is_2x2(const PoolGeometry& g) { return g.kernel == 2 && g.stride == 2 && g.padding == 0; }
}  // namespace

void maxpool2x2_plane_forward(float* y, int32_t* argmax, const float* x, int64_t H, int64_t W) {
  if (!plane_maxpool2x2_avx512(y, argmax, x, W, H / 2, W / 2)) plane_maxpool2x2(y, argmax, x, W, H / 2, W / 2);
}

void maxpool2x2_plane_backward(float* dx, const float* dy, const int32_t* argmax, int64_t H, int64_t W) {
  if (!plane_maxpool2x2_backward_avx512(dx, dy, argmax, H, W, H / 2, W / 2)) {
    plane_backward(dx, dy, argmax, H * W, (H / 2) * (W / 2));
  }
}

template <typename T>
void maxpool2d_forward(T* y, int32_t* argmax, const T* x, const PoolGeometry& g, int64_t N) {
  const int64_t Ho = g.out_height(), Wo = g.out_width();
  if (is_2x2(g)) {
#pragma omp parallel for schedule(static)
    for (int64_t plane = 0; plane < N * g.channels; ++plane) {
      // The common 2x2, stride 2 window without padding, in one pass over pairs of rows.
      T* out = y + plane * Ho * Wo;
      int32_t* idx = argmax ? argmax + plane * Ho * Wo : nullptr;
      const T* in = x + plane * g.height * g.width;
      if constexpr (std::is_same_v<T, float>) maxpool2x2_plane_forward(out, idx, in, g.height, g.width);
      else plane_maxpool2x2(out, idx, in, g.width, Ho, Wo);
    }
    return;
  }
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t c = 0; c < g.channels; ++c) {
      const int64_t plane = n * g.channels + c;
      const T* in = x + plane * g.height * g.width;
      T* out = y + plane * Ho * Wo;
      int32_t* idx = argmax ? argmax + plane * Ho * Wo : nullptr;
      for (int64_t oh = 0; oh < Ho; ++oh) {
        const int64_t h0 = oh * g.stride - g.padding;
        const int64_t h_begin = std::max<int64_t>(h0, 0), h_end = std::min(h0 + g.kernel, g.height);
        for (int64_t ow = 0; ow < Wo; ++ow) {
          const int64_t w0 = ow * g.stride - g.padding;
          const int64_t w_begin = std::max<int64_t>(w0, 0), w_end = std::min(w0 + g.kernel, g.width);
          int64_t best = h_begin * g.width + w_begin;
          T best_value = in[best];
          for (int64_t h = h_begin; h < h_end; ++h) {
            for (int64_t w = w_begin; w < w_end; ++w) {
              const T v = in[h * g.width + w];
              if (v > best_value || std::isnan(v)) {
                best_value = v;
                best = h * g.width + w;
                if (std::isnan(v)) break;
              }
            }
            if (std::isnan(best_value)) break;
          }
          out[oh * Wo + ow] = best_value;
          if (idx) idx[oh * Wo + ow] = static_cast<int32_t>(best);
        }
      }
    }
  }
}

template <typename T>
void maxpool2d_backward(T* dx, const T* dy, const int32_t* argmax, const PoolGeometry& g,
                        int64_t N) {
  const int64_t Ho = g.out_height(), Wo = g.out_width();
  const int64_t plane_in = g.height * g.width, plane_out = Ho * Wo;
#pragma omp parallel for schedule(static)
  for (int64_t plane = 0; plane < N * g.channels; ++plane) {
    T* out = dx + plane * plane_in;
    const T* g_in = dy + plane * plane_out;
    const int32_t* idx = argmax + plane * plane_out;
    if constexpr (std::is_same_v<T, float>) {
      if (is_2x2(g)) {
        maxpool2x2_plane_backward(out, g_in, idx, g.height, g.width);
        continue;
      }
    }
    plane_backward(out, g_in, idx, plane_in, plane_out);
  }
}

template void maxpool2d_forward<float>(float*, int32_t*, const float*, const PoolGeometry&, int64_t);
template void maxpool2d_forward<double>(double*, int32_t*, const double*, const PoolGeometry&,
                                        int64_t);
template void maxpool2d_backward<float>(float*, const float*, const int32_t*, const PoolGeometry&,
                                        int64_t);
template void maxpool2d_backward<double>(double*, const double*, const int32_t*,
                                         const PoolGeometry&, int64_t);

}  // namespace bnlab::kernels
