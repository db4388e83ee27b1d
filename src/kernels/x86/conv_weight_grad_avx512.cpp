// The weight gradient of a 3x3, stride-1, unpadded convolution over a few input channels (the
// Direct algorithm's layers: the seed network's conv1, 1 -> 32 channels on 28 x 28), with
// AVX-512, without im2col: for each (output channel o, input channel i), the nine taps' sums of
// dy[o][oh][ow] * x[i][oh + kh][ow + kw], row by row, in 18 accumulators (a tap's row is two
// vectors: output rows of at most 32) that stay in registers down the plane. Their lanes (the
// columns ow) carry on from sample to sample in `lanes`; conv3x3_weight_grad_add_lanes adds each
// tap's 32 lanes up, in a fixed order, at the end. im2col and the BLAS ran this product at 69
// GFLOP/s on 2 threads (M = 32, N = 9 and a depth of 676: conv1's backward 0.36 ms of a 14.75 ms
// training step, AMD EPYC Zen 5).
#include "kernels/conv.h"

#include <cstdint>

namespace bnlab::kernels {
bool conv3x3_weight_grad_fits(const ConvGeometry& g) {
  return g.kernel_h == 3 && g.kernel_w == 3 && g.stride == 1 && g.padding == 0 && g.out_width() <= 32;
}
}  // namespace bnlab::kernels

#if defined(__x86_64__)
#include "kernels/prefetch.h"
#include "kernels/x86/avx512_rows.h"
#include "kernels/x86/multiversion.h"

BNLAB_AVX512_INTRINSICS_BEGIN

namespace bnlab::kernels {
namespace {

constexpr int kTaps = 9;

// Rows of more than 16 outputs take two vectors (Wide), shorter ones one.
template <bool Wide>
BNLAB_AVX512 void weight_grad_lanes(float* lanes, const float* x, const float* dy, const ConvGeometry& g) {
  const int64_t H = g.height, W = g.width, Ho = g.out_height(), Wo = g.out_width();
  const auto [lo, hi] = avx512::lane_masks(Wo);
  // The next channel's dy, which comes from memory, asked for row by row with the first input
  // channel's (prefetch.h): this kernel's share of a training step's perf samples 2.5-2.8 -> 2.0%
  // (AMD EPYC Zen 5).
  const PlanePrefetch ahead(Ho * Wo * static_cast<int64_t>(sizeof(float)), Ho);
  for (int64_t o = 0; o < g.out_channels; ++o) {
    const float* d = dy + o * Ho * Wo;
    for (int64_t i = 0; i < g.in_channels; ++i) {
      float* lane = lanes + (o * g.in_channels + i) * kTaps * kConv3x3GradLanes;
      const float* xi = x + i * H * W;
      __m512 acc[2 * kTaps];
#pragma GCC unroll 18
      for (int t = 0; t < 2 * kTaps; ++t) acc[t] = _mm512_loadu_ps(lane + 16 * t);
      for (int64_t oh = 0; oh < Ho; ++oh) {
        if (i == 0) ahead.part_of_next(dy, o, g.out_channels, oh);
        // Lanes past Wo load as zero from both operands: nothing past a row is read, and those
        // lanes stay zero.
        const __m512 d0 = _mm512_maskz_loadu_ps(lo, d + oh * Wo);
        const __m512 d1 = Wide ? _mm512_maskz_loadu_ps(hi, d + oh * Wo + 16) : _mm512_setzero_ps();
#pragma GCC unroll 3
        for (int kh = 0; kh < 3; ++kh) {
          const float* row = xi + (oh + kh) * W;
#pragma GCC unroll 3
          for (int kw = 0; kw < 3; ++kw) {
            const int t = 2 * (kh * 3 + kw);
            acc[t] = _mm512_fmadd_ps(d0, _mm512_maskz_loadu_ps(lo, row + kw), acc[t]);
            if (Wide) acc[t + 1] = _mm512_fmadd_ps(d1, _mm512_maskz_loadu_ps(hi, row + kw + 16), acc[t + 1]);
          }
        }
      }
#pragma GCC unroll 18
      for (int t = 0; t < 2 * kTaps; ++t) _mm512_storeu_ps(lane + 16 * t, acc[t]);
    }
  }
}

}  // namespace

void conv3x3_weight_grad_lanes(float* lanes, const float* x_n, const float* dy_n, const ConvGeometry& g) {
  if (g.out_width() > 16) weight_grad_lanes<true>(lanes, x_n, dy_n, g);
  else weight_grad_lanes<false>(lanes, x_n, dy_n, g);
}

BNLAB_AVX512 void conv3x3_weight_grad_add_lanes(float* dw, const float* lanes, const ConvGeometry& g) {
  for (int64_t j = 0; j < g.weight_size(); ++j) {
    const float* lane = lanes + kConv3x3GradLanes * j;
    const __m512 sum = _mm512_add_ps(_mm512_loadu_ps(lane), _mm512_loadu_ps(lane + 16));
    dw[j] += _mm512_reduce_add_ps(sum);
  }
}

}  // namespace bnlab::kernels

BNLAB_AVX512_INTRINSICS_END

#else  // not x86-64

namespace bnlab::kernels {
void conv3x3_weight_grad_lanes(float*, const float*, const float*, const ConvGeometry&) {}
void conv3x3_weight_grad_add_lanes(float*, const float*, const ConvGeometry&) {}
}  // namespace bnlab::kernels

#endif
