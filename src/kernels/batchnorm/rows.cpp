// The float row loops of rows.h, multi-versioned (kernels/x86/multiversion.h). Compiled with
// -ffp-contract=fast (src/kernels/kernels.cmake): x * alpha + beta is one fused multiply-add in
// the AVX2 and AVX-512 clones, as in PyTorch's vectorized BN (rows.h says why);
// FpContract.RowAffineFusesTheMultiplyAdd (src/kernels/fp_contract_test.cpp) fails without it.
#include "kernels/batchnorm/rows.h"

#include <algorithm>
#include <cstdint>

#include "kernels/batchnorm/lanes.h"
#include "kernels/x86/multiversion.h"

namespace bnlab::kernels {
namespace {
using lanes::lane_sum;
using lanes::lane_sum2;

// Elementwise row loops run `head_to_line(y, n)` elements one by one first, so that the vector
// loop's stores start on a cache line: rows of 26x26 floats start 16 bytes into a line, and every
// 64-byte store split across two (the BN forward took 20% longer than with aligned rows). The
// inputs share the output's layout, so their loads align as well. Elementwise: the same bits.
BNLAB_INLINE int64_t head_to_line(const float* y, int64_t n) {
  const auto offset = reinterpret_cast<uintptr_t>(y) % 64;
  return std::min<int64_t>(n, offset % sizeof(float) ? 0 : static_cast<int64_t>((64 - offset) % 64 / sizeof(float)));
}

// for each i < n: body(i), the head first (above)
template <typename Body>
BNLAB_INLINE void for_each_from_line(const float* y, int64_t n, Body body) {
  const int64_t head = head_to_line(y, n);
  for (int64_t i = 0; i < head; ++i) body(i);
  for (int64_t i = head; i < n; ++i) body(i);
}
}  // namespace

BNLAB_INLINE void row_sum_body(const float* x, int64_t n, double* sum) {
  *sum += lane_sum<double>(n, [&](int64_t i) { return static_cast<double>(x[i]); });
}
BNLAB_MULTIVERSION(void, row_sum, (const float* x, int64_t n, double* sum),
                   (x, n, sum), row_sum_body)

BNLAB_INLINE void row_squared_deviations_body(const float* x, int64_t n, float mean, double* squares) {
  *squares += lane_sum<double>(n, [&](int64_t i) {
    const float d = x[i] - mean;
    return static_cast<double>(d * d);  // the square in float, then widened
  });
}
BNLAB_MULTIVERSION(void, row_squared_deviations, (const float* x, int64_t n, float mean, double* squares),
                   (x, n, mean, squares), row_squared_deviations_body)

// BN's affine map, x * alpha + beta: one fused multiply-add where the clone has FMA. The fused
// ReLU's forward and its recomputed mask in the backward both call it, so that they round alike.
namespace {
BNLAB_INLINE float affine(float x, float alpha, float beta) { return x * alpha + beta; }
}  // namespace

BNLAB_INLINE void row_affine_body(float* y, const float* x, int64_t n, float alpha, float beta) {
  for_each_from_line(y, n, [&](int64_t i) { y[i] = affine(x[i], alpha, beta); });
}
BNLAB_MULTIVERSION(void, row_affine, (float* y, const float* x, int64_t n, float alpha, float beta),
                   (y, x, n, alpha, beta), row_affine_body)

BNLAB_INLINE void row_affine_relu_body(float* y, const float* x, int64_t n, float alpha, float beta) {
  for_each_from_line(y, n, [&](int64_t i) {
    const float v = affine(x[i], alpha, beta);
    y[i] = v < 0.0f ? 0.0f : v;
  });
}
BNLAB_MULTIVERSION(void, row_affine_relu, (float* y, const float* x, int64_t n, float alpha, float beta),
                   (y, x, n, alpha, beta), row_affine_relu_body)

BNLAB_INLINE void row_sum_dot_body(const float* dy, const float* x, int64_t n, float mean, double* sum, double* dot) {
  float s, d;  // PyTorch also reduces a row in float, then adds it in double
  lane_sum2<float>(n, [&](int64_t i) { return dy[i]; }, [&](int64_t i) { return dy[i] * (x[i] - mean); }, &s, &d);
  *sum += s;
  *dot += d;
}
BNLAB_MULTIVERSION(void, row_sum_dot, (const float* dy, const float* x, int64_t n, float mean, double* sum, double* dot),
                   (dy, x, n, mean, sum, dot), row_sum_dot_body)

BNLAB_INLINE void row_bn_input_grad_body(float* dx, const float* dy, const float* x, int64_t n, float mean, float k,
                       float grad_mean, float scale) {
  for_each_from_line(dx, n, [&](int64_t i) { dx[i] = (dy[i] - grad_mean - (x[i] - mean) * k) * scale; });
}
BNLAB_MULTIVERSION(void, row_bn_input_grad, (float* dx, const float* dy, const float* x, int64_t n, float mean, float k, float grad_mean, float scale),
                   (dx, dy, x, n, mean, k, grad_mean, scale), row_bn_input_grad_body)

BNLAB_INLINE void row_sum_dot_masked_body(const float* dy, const float* y, const float* x, int64_t n, float mean,
                        double* sum, double* dot) {
  // dy loaded unconditionally, so that the select vectorizes
  auto g = [&](int64_t i) {
    const float upstream = dy[i];
    return y[i] > 0.0f ? upstream : 0.0f;
  };
  float s, d;
  lane_sum2<float>(n, g, [&](int64_t i) { return g(i) * (x[i] - mean); }, &s, &d);
  *sum += s;
  *dot += d;
}
BNLAB_MULTIVERSION(void, row_sum_dot_masked, (const float* dy, const float* y, const float* x, int64_t n, float mean, double* sum, double* dot),
                   (dy, y, x, n, mean, sum, dot), row_sum_dot_masked_body)

BNLAB_INLINE void row_bn_input_grad_masked_body(float* dx, const float* dy, const float* y, const float* x, int64_t n,
                              float mean, float k, float grad_mean, float scale) {
  for_each_from_line(dx, n, [&](int64_t i) {
    const float upstream = dy[i];
    const float g = y[i] > 0.0f ? upstream : 0.0f;
    dx[i] = (g - grad_mean - (x[i] - mean) * k) * scale;
  });
}
BNLAB_MULTIVERSION(void, row_bn_input_grad_masked, (float* dx, const float* dy, const float* y, const float* x, int64_t n, float mean, float k, float grad_mean, float scale),
                   (dx, dy, y, x, n, mean, k, grad_mean, scale), row_bn_input_grad_masked_body)

// The fused ReLU's mask recomputed from x (rows.h): y > 0 exactly where affine(x) > 0, NaN included
// (y = v < 0 ? 0 : v keeps a NaN, and neither passes).
BNLAB_INLINE void row_sum_dot_relu_body(const float* dy, const float* x, int64_t n, float mean, float alpha,
                                        float beta, double* sum, double* dot) {
  auto g = [&](int64_t i) {
    const float upstream = dy[i];
    return affine(x[i], alpha, beta) > 0.0f ? upstream : 0.0f;
  };
  float s, d;
  lane_sum2<float>(n, g, [&](int64_t i) { return g(i) * (x[i] - mean); }, &s, &d);
  *sum += s;
  *dot += d;
}
BNLAB_MULTIVERSION(void, row_sum_dot_relu, (const float* dy, const float* x, int64_t n, float mean, float alpha, float beta, double* sum, double* dot),
                   (dy, x, n, mean, alpha, beta, sum, dot), row_sum_dot_relu_body)

BNLAB_INLINE void row_bn_input_grad_relu_body(float* dx, const float* dy, const float* x, int64_t n, float mean,
                                              float k, float grad_mean, float scale, float alpha, float beta) {
  for_each_from_line(dx, n, [&](int64_t i) {
    const float upstream = dy[i];
    const float g = affine(x[i], alpha, beta) > 0.0f ? upstream : 0.0f;
    dx[i] = (g - grad_mean - (x[i] - mean) * k) * scale;
  });
}
BNLAB_MULTIVERSION(void, row_bn_input_grad_relu, (float* dx, const float* dy, const float* x, int64_t n, float mean, float k, float grad_mean, float scale, float alpha, float beta),
                   (dx, dy, x, n, mean, k, grad_mean, scale, alpha, beta), row_bn_input_grad_relu_body)

BNLAB_INLINE void row_relu_grad_channels_body(float* g, const float* dy, const float* x, int64_t C, const float* alpha,
                                              const float* beta) {
  for (int64_t c = 0; c < C; ++c) {
    const float upstream = dy[c];
    g[c] = affine(x[c], alpha[c], beta[c]) > 0.0f ? upstream : 0.0f;
  }
}
BNLAB_MULTIVERSION(void, row_relu_grad_channels, (float* g, const float* dy, const float* x, int64_t C, const float* alpha, const float* beta),
                   (g, dy, x, C, alpha, beta), row_relu_grad_channels_body)

BNLAB_INLINE void row_affine_channels_body(float* y, const float* x, int64_t C, const float* alpha, const float* beta, bool relu) {
  if (relu) {
    for (int64_t c = 0; c < C; ++c) {
      const float v = affine(x[c], alpha[c], beta[c]);
      y[c] = v < 0.0f ? 0.0f : v;
    }
  } else {
    for (int64_t c = 0; c < C; ++c) y[c] = affine(x[c], alpha[c], beta[c]);
  }
}
BNLAB_MULTIVERSION(void, row_affine_channels, (float* y, const float* x, int64_t C, const float* alpha, const float* beta, bool relu),
                   (y, x, C, alpha, beta, relu), row_affine_channels_body)

BNLAB_INLINE void row_bn_input_grad_channels_body(float* dx, const float* dy, const float* y, const float* x, int64_t C,
                                const float* mean, const float* k, const float* grad_mean, const float* scale) {
  if (y) {
    for (int64_t c = 0; c < C; ++c) {
      const float upstream = dy[c];
      const float g = y[c] > 0.0f ? upstream : 0.0f;
      dx[c] = (g - grad_mean[c] - (x[c] - mean[c]) * k[c]) * scale[c];
    }
  } else {
    for (int64_t c = 0; c < C; ++c) dx[c] = (dy[c] - grad_mean[c] - (x[c] - mean[c]) * k[c]) * scale[c];
  }
}
BNLAB_MULTIVERSION(void, row_bn_input_grad_channels, (float* dx, const float* dy, const float* y, const float* x, int64_t C, const float* mean, const float* k, const float* grad_mean, const float* scale),
                   (dx, dy, y, x, C, mean, k, grad_mean, scale), row_bn_input_grad_channels_body)

}  // namespace bnlab::kernels
