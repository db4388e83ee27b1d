#include "kernels/pool.h"

#include <algorithm>
#include <cmath>

namespace bnlab::kernels {

namespace {
// The common 2x2, stride 2 window without padding, in one pass over pairs of rows.
template <typename T>
void maxpool2x2_plane(T* out, int32_t* idx, const T* in, int64_t H, int64_t W, int64_t Ho, int64_t Wo) {
  (void)H;
  for (int64_t oh = 0; oh < Ho; ++oh) {
    const T* r0 = in + 2 * oh * W;
    const T* r1 = r0 + W;
    for (int64_t ow = 0; ow < Wo; ++ow) {
      const int64_t w = 2 * ow;
      // Candidates in PyTorch's scan order; a later one wins only if strictly larger or NaN.
      T best = r0[w];
      int64_t at = 2 * oh * W + w;
      const T c[3] = {r0[w + 1], r1[w], r1[w + 1]};
      const int64_t pos[3] = {at + 1, at + W, at + W + 1};
      for (int k = 0; k < 3; ++k) {  // branch-free: random data would mispredict half the time
        const bool take = !(best != best) && (c[k] > best || c[k] != c[k]);
        best = take ? c[k] : best;
        at = take ? pos[k] : at;
      }
      out[oh * Wo + ow] = best;
      idx[oh * Wo + ow] = static_cast<int32_t>(at);
    }
  }
}
}  // namespace

template <typename T>
void maxpool2d_forward(T* y, int32_t* argmax, const T* x, const PoolGeometry& g, int64_t N) {
  const int64_t Ho = g.out_height(), Wo = g.out_width();
  if (g.kernel == 2 && g.stride == 2 && g.padding == 0) {
#pragma omp parallel for schedule(static)
    for (int64_t plane = 0; plane < N * g.channels; ++plane) {
      maxpool2x2_plane(y + plane * Ho * Wo, argmax + plane * Ho * Wo, x + plane * g.height * g.width,
                       g.height, g.width, Ho, Wo);
    }
    return;
  }
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t c = 0; c < g.channels; ++c) {
      const int64_t plane = n * g.channels + c;
      const T* in = x + plane * g.height * g.width;
      T* out = y + plane * Ho * Wo;
      int32_t* idx = argmax + plane * Ho * Wo;
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
          idx[oh * Wo + ow] = static_cast<int32_t>(best);
        }
      }
    }
  }
}

template <typename T>
void maxpool2d_backward(T* dx, const T* dy, const int32_t* argmax, const PoolGeometry& g,
                        int64_t N) {
  const int64_t Ho = g.out_height(), Wo = g.out_width();
  const int64_t plane_in = g.height * g.width;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t c = 0; c < g.channels; ++c) {
      const int64_t plane = n * g.channels + c;
      T* out = dx + plane * plane_in;
      std::fill(out, out + plane_in, T(0));
      const T* g_in = dy + plane * Ho * Wo;
      const int32_t* idx = argmax + plane * Ho * Wo;
      for (int64_t p = 0; p < Ho * Wo; ++p) out[idx[p]] += g_in[p];
    }
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
