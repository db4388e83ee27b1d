#include "kernels/vector_rows.h"

#include "bnlab/rng.h"
#include "kernels/multiversion.h"

namespace bnlab::kernels {

BNLAB_MULTIVERSION
void row_axpy(float* __restrict wide, const float* __restrict x, int64_t n, float a) {
  row_axpy<float>(wide, x, n, a);
}

BNLAB_MULTIVERSION
void row_taps3x3(float* __restrict wide, const float* __restrict x, int64_t n, int64_t W, const float* w) {
  row_taps3x3<float>(wide, x, n, W, w);
}

BNLAB_MULTIVERSION
void direct_conv(float* y, float* wide, const float* x, const float* w, const float* bias,
                 const ConvGeometry& g) {
  direct_conv_impl(y, wide, x, w, bias, g);
}

namespace {
// max(a, b) as the scan "b wins only if strictly larger or NaN, and nothing beats a NaN".
inline bool scan_takes(float best, float next) { return !(best != best) && (next > best || next != next); }
}  // namespace

BNLAB_MULTIVERSION
void plane_maxpool2x2(float* y, int32_t* idx, const float* x, int64_t W, int64_t Ho, int64_t Wo) {
  for (int64_t i = 0; i < Ho; ++i) {
    const float* r0 = x + 2 * i * W;
    const float* r1 = r0 + W;
    float* out = y + i * Wo;
    if (!idx) {
      for (int64_t j = 0; j < Wo; ++j) {  // all four loaded first: selects, not branches
        const float a = r0[2 * j], b = r0[2 * j + 1], c = r1[2 * j], d = r1[2 * j + 1];
        float best = a;
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
      const float a = r0[2 * j], b = r0[2 * j + 1], c = r1[2 * j], d = r1[2 * j + 1];
      float best = a;
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

BNLAB_MULTIVERSION
void row_dropout_pairs(float* y, uint8_t* keep, const float* x, int64_t first, int64_t pairs,
                       uint64_t key, uint32_t threshold, float scale) {
  for (int64_t j = 0; j < pairs; ++j) {
    const uint64_t bits = random_bits(key, static_cast<uint64_t>(first + j));
    const uint32_t u0 = static_cast<uint32_t>(bits >> 8) & 0xffffff;
    const uint32_t u1 = static_cast<uint32_t>(bits >> 40) & 0xffffff;
    const bool k0 = u0 >= threshold, k1 = u1 >= threshold;
    const float v0 = x[2 * j] * scale, v1 = x[2 * j + 1] * scale;  // unconditional: a select, no branch
    keep[2 * j] = k0;
    keep[2 * j + 1] = k1;
    y[2 * j] = k0 ? v0 : 0.0f;
    y[2 * j + 1] = k1 ? v1 : 0.0f;
  }
}

BNLAB_MULTIVERSION
void row_dropout_backward(float* dx, const float* dy, const uint8_t* keep, int64_t n, float scale) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = dy[i] * scale;
    dx[i] = keep[i] ? v : 0.0f;
  }
}

BNLAB_MULTIVERSION
void row_relu(float* y, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] < 0.0f ? 0.0f : x[i];
}

BNLAB_MULTIVERSION
void row_relu_backward(float* dx, const float* dy, const float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

BNLAB_MULTIVERSION
void row_add(float* y, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

}  // namespace bnlab::kernels
