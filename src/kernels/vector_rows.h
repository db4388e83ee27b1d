// Row loops of max-pooling, dropout, ReLU and convolution (direct, scatter-add). Each body is
// written once, as an inline template below; the float functions (vector_rows.cpp) instantiate
// it per instruction set, chosen at run time (kernels/x86/multiversion.h), and double (the
// finite-difference tests) calls the template. Each loop is written so that it vectorizes:
// selects instead of branches, no early exits.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>

#include "bnlab/rng.h"
#include "kernels/conv.h"
#include "kernels/x86/multiversion.h"

namespace bnlab::kernels {

// One sample of a stride-1, unpadded convolution, directly: y (Co, Ho, Wo) = bias + the sum over
// taps (i, kh, kw), in that order, of w[o, i, kh, kw] * x[i, oh + kh, ow + kw]. For few taps per
// output (conv_algorithm's Direct). Each tap is one long vector loop: on the input's own row
// width W, output (oh, ow) sits at oh * W + ow and its input at that plus i*H*W + kh*W + kw, so
// a tap is y_wide[p] += w * x[p + offset] over p < (Ho - 1) * W + Wo; the Wo columns of each row
// are then copied out. wide: Ho * W scratch. bias may be null.
void direct_conv(float* y, float* wide, const float* x, const float* w, const float* bias,
                 const ConvGeometry& g);

// One plane of a 2x2, stride-2 max-pool: y (Ho, Wo) from x (H, W): y[i][j] = max of
// x[2i][2j], x[2i][2j+1], x[2i+1][2j], x[2i+1][2j+1], idx[i][j] = the winner's flat index in x
// (idx null: not wanted). PyTorch's rule: scan order, a later value wins only if strictly larger
// or NaN; NaN stays. A plane per call: rows are short (12 here), and a call per row cost more
// than the row.
void plane_maxpool2x2(float* y, int32_t* idx, const float* x, int64_t W, int64_t Ho, int64_t Wo);
// The same on AVX-512 for rows of at most 32 values (x86/pool_avx512.cpp): returns false, having done
// nothing, on a CPU without AVX-512 or for wider rows.
bool plane_maxpool2x2_avx512(float* y, int32_t* idx, const float* x, int64_t W, int64_t Ho, int64_t Wo);
// The backward of the 2x2 pool on AVX-512 for planes of rows of at most 32 values: dx (H, W) =
// each window's gradient dy (Ho, Wo) at its maximum idx (plane_maxpool2x2's flat indices), 0
// elsewhere, row by row (the portable backward fills the plane with 0 and adds each gradient at
// its index: the same bits, a gradient of -0 landing as +0). Returns false, having done nothing,
// on a CPU without AVX-512 or for wider rows.
bool plane_maxpool2x2_backward_avx512(float* dx, const float* dy, const int32_t* idx, int64_t H, int64_t W,
                                      int64_t Ho, int64_t Wo);

// Inverted dropout over elements [2*first, 2*first + 2*pairs) of a tensor: pair j takes the two
// 24-bit halves of random_bits(key, j); keep = u >= threshold (u / 2^24 >= p); y = keep ? x*scale : 0.
// The pointers point at element 2*first.
void row_dropout_pairs(float* y, uint8_t* keep, const float* x, int64_t first, int64_t pairs,
                       uint64_t key, uint32_t threshold, float scale);

// dx = keep ? dy * scale : 0
void row_dropout_backward(float* dx, const float* dy, const uint8_t* keep, int64_t n, float scale);

// y = max(x, 0) with NaN passed through; dx = y > 0 ? dy : 0
void row_relu(float* y, const float* x, int64_t n);
void row_relu_backward(float* dx, const float* dy, const float* y, int64_t n);

// y += x
void row_add(float* y, const float* x, int64_t n);

// The number of x[i] that are infinite or NaN: exponent bits all set. Integer compares and a
// sum, which vectorize where isfinite's early exit would not.
int64_t row_count_non_finite(const float* x, int64_t n);

// wide[p] += a * x[p]: one tap of direct_conv
void row_axpy(float* __restrict wide, const float* __restrict x, int64_t n, float a);
// wide[p] += the nine taps w[kh * 3 + kw] * x[p + kh * W + kw] of a 3x3 kernel, in that order,
// summed in registers (a tap at a time would load and store wide nine times)
void row_taps3x3(float* __restrict wide, const float* __restrict x, int64_t n, int64_t W, const float* w);

template <typename T>
BNLAB_INLINE void row_axpy(T* __restrict wide, const T* __restrict x, int64_t n, T a) {
  for (int64_t p = 0; p < n; ++p) wide[p] += a * x[p];
}
template <typename T>
BNLAB_INLINE void row_taps3x3(T* __restrict wide, const T* __restrict x, int64_t n, int64_t W, const T* w) {
  const T* __restrict x1 = x + W;
  const T* __restrict x2 = x + 2 * W;
  for (int64_t p = 0; p < n; ++p) {
    T acc = wide[p];
    acc += w[0] * x[p];
    acc += w[1] * x[p + 1];
    acc += w[2] * x[p + 2];
    acc += w[3] * x1[p];
    acc += w[4] * x1[p + 1];
    acc += w[5] * x1[p + 2];
    acc += w[6] * x2[p];
    acc += w[7] * x2[p + 1];
    acc += w[8] * x2[p + 2];
    wide[p] = acc;
  }
}

template <typename T>
BNLAB_INLINE void direct_conv_impl(T* y, T* wide, const T* x, const T* w, const T* bias, const ConvGeometry& g) {
  const int64_t Ho = g.out_height(), Wo = g.out_width(), W = g.width, taps = g.col_rows();
  const int64_t span = (Ho - 1) * W + Wo;
  for (int64_t o = 0; o < g.out_channels; ++o) {
    const T b = bias ? bias[o] : T(0);
    for (int64_t p = 0; p < span; ++p) wide[p] = b;
    for (int64_t i = 0; i < g.in_channels; ++i) {
      const T* xi = x + i * g.height * W;
      const T* wi = w + o * taps + i * g.kernel_h * g.kernel_w;
      if (g.kernel_h == 3 && g.kernel_w == 3) {
        row_taps3x3(wide, xi, span, W, wi);
        continue;
      }
      for (int64_t kh = 0; kh < g.kernel_h; ++kh)
        for (int64_t kw = 0; kw < g.kernel_w; ++kw) row_axpy(wide, xi + kh * W + kw, span, wi[kh * g.kernel_w + kw]);
    }
    for (int64_t oh = 0; oh < Ho; ++oh) {  // a loop, not std::copy: rows are short, calls cost more
      T* out = y + (o * Ho + oh) * Wo;
      const T* in = wide + oh * W;
      for (int64_t ow = 0; ow < Wo; ++ow) out[ow] = in[ow];
    }
  }
}
template <typename T>
void direct_conv(T* y, T* wide, const T* x, const T* w, const T* bias, const ConvGeometry& g) {
  direct_conv_impl(y, wide, x, w, bias, g);
}

// max(best, next) as PyTorch's scan: next wins only if strictly larger or NaN, nothing beats a NaN.
template <typename T>
BNLAB_INLINE bool scan_takes(T best, T next) {
  return !(best != best) && (next > best || next != next);
}

template <typename T>
BNLAB_INLINE void plane_maxpool2x2_impl(T* y, int32_t* idx, const T* x, int64_t W, int64_t Ho, int64_t Wo) {
  for (int64_t i = 0; i < Ho; ++i) {
    const T* r0 = x + 2 * i * W;
    const T* r1 = r0 + W;
    T* out = y + i * Wo;
    if (!idx) {
      for (int64_t j = 0; j < Wo; ++j) {  // all four loaded first: selects, not branches
        const T a = r0[2 * j], b = r0[2 * j + 1], c = r1[2 * j], d = r1[2 * j + 1];
        T best = a;
        best = scan_takes(best, b) ? b : best;
        best = scan_takes(best, c) ? c : best;
        best = scan_takes(best, d) ? d : best;
        out[j] = best;
      }
      continue;
    }
    int32_t* where = idx + i * Wo;
    const int32_t base = static_cast<int32_t>(2 * i * W), width = static_cast<int32_t>(W);
    for (int64_t j = 0; j < Wo; ++j) {
      const T a = r0[2 * j], b = r0[2 * j + 1], c = r1[2 * j], d = r1[2 * j + 1];
      T best = a;
      int32_t at = 0;
      bool take = scan_takes(best, b);
      best = take ? b : best;
      at = take ? 1 : at;
      take = scan_takes(best, c);
      best = take ? c : best;
      at = take ? width : at;
      take = scan_takes(best, d);
      best = take ? d : best;
      at = take ? width + 1 : at;
      out[j] = best;
      where[j] = base + static_cast<int32_t>(2 * j) + at;
    }
  }
}
template <typename T>
void plane_maxpool2x2(T* y, int32_t* idx, const T* x, int64_t W, int64_t Ho, int64_t Wo) {
  plane_maxpool2x2_impl(y, idx, x, W, Ho, Wo);
}

// Element i's 24-bit uniform: half (i & 1) of random_bits(key, i / 2).
inline uint32_t dropout_uniform(uint64_t key, int64_t i) {
  return static_cast<uint32_t>(random_bits(key, static_cast<uint64_t>(i / 2)) >> (8 + 32 * (i & 1))) & 0xffffff;
}

template <typename T>
BNLAB_INLINE void row_dropout_pairs(T* y, uint8_t* keep, const T* x, int64_t first, int64_t pairs, uint64_t key,
                                    uint32_t threshold, T scale) {
  for (int64_t j = 0; j < pairs; ++j) {
    const uint64_t bits = random_bits(key, static_cast<uint64_t>(first + j));  // dropout_uniform of 2j, 2j+1
    const uint32_t u0 = static_cast<uint32_t>(bits >> 8) & 0xffffff;
    const uint32_t u1 = static_cast<uint32_t>(bits >> 40) & 0xffffff;
    const bool k0 = u0 >= threshold, k1 = u1 >= threshold;
    const T v0 = x[2 * j] * scale, v1 = x[2 * j + 1] * scale;  // unconditional: a select, no branch
    keep[2 * j] = k0;
    keep[2 * j + 1] = k1;
    y[2 * j] = k0 ? v0 : T(0);
    y[2 * j + 1] = k1 ? v1 : T(0);
  }
}
template <typename T>
BNLAB_INLINE void row_dropout_backward(T* dx, const T* dy, const uint8_t* keep, int64_t n, T scale) {
  for (int64_t i = 0; i < n; ++i) {
    const T v = dy[i] * scale;
    dx[i] = keep[i] ? v : T(0);
  }
}
BNLAB_INLINE int64_t row_count_non_finite_of(const float* x, int64_t n) {
  int64_t count = 0;
  for (int64_t i = 0; i < n; ++i) count += (std::bit_cast<uint32_t>(x[i]) & 0x7f800000u) == 0x7f800000u;
  return count;
}
template <typename T>
BNLAB_INLINE void row_relu(T* y, const T* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] < T(0) ? T(0) : x[i];
}
template <typename T>
BNLAB_INLINE void row_relu_backward(T* dx, const T* dy, const T* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dx[i] = y[i] > T(0) ? dy[i] : T(0);
}
template <typename T>
BNLAB_INLINE void row_add(T* y, const T* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

}  // namespace bnlab::kernels
