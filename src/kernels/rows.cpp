#include "kernels/rows.h"

#include "kernels/multiversion.h"

namespace bnlab::kernels {
// `omp simd reduction` lets the compiler keep one partial sum per vector lane (a fixed order
// per instruction set, so results are reproducible) without -ffast-math.
BNLAB_MULTIVERSION
void row_sum(const float* x, int64_t n, double* sum) {
  double total = 0;
#pragma omp simd reduction(+ : total)
  for (int64_t i = 0; i < n; ++i) total += x[i];
  *sum += total;
}

BNLAB_MULTIVERSION
void row_squared_deviations(const float* x, int64_t n, float mean, double* squares) {
  double total = 0;
#pragma omp simd reduction(+ : total)
  for (int64_t i = 0; i < n; ++i) {
    const float d = x[i] - mean;
    total += d * d;  // the square in float, then widened
  }
  *squares += total;
}

BNLAB_MULTIVERSION
void row_affine(float* y, const float* x, int64_t n, float alpha, float beta) {
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * alpha + beta;
}

BNLAB_MULTIVERSION
void row_affine_relu(float* y, const float* x, int64_t n, float alpha, float beta) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i] * alpha + beta;
    y[i] = v < 0.0f ? 0.0f : v;
  }
}

BNLAB_MULTIVERSION
void row_sum_dot(const float* dy, const float* x, int64_t n, float mean, double* sum, double* dot) {
  float s = 0, d = 0;  // PyTorch also reduces a row in float, then adds it in double
#pragma omp simd reduction(+ : s, d)
  for (int64_t i = 0; i < n; ++i) {
    s += dy[i];
    d += dy[i] * (x[i] - mean);
  }
  *sum += s;
  *dot += d;
}

BNLAB_MULTIVERSION
void row_bn_input_grad(float* dx, const float* dy, const float* x, int64_t n, float mean, float k,
                       float grad_mean, float scale) {
  for (int64_t i = 0; i < n; ++i) dx[i] = (dy[i] - grad_mean - (x[i] - mean) * k) * scale;
}

BNLAB_MULTIVERSION
void row_sum_dot_masked(const float* dy, const float* y, const float* x, int64_t n, float mean,
                        double* sum, double* dot) {
  float s = 0, d = 0;
#pragma omp simd reduction(+ : s, d)
  for (int64_t i = 0; i < n; ++i) {
    const float upstream = dy[i];  // loaded unconditionally so the select vectorizes
    const float g = y[i] > 0.0f ? upstream : 0.0f;
    s += g;
    d += g * (x[i] - mean);
  }
  *sum += s;
  *dot += d;
}

BNLAB_MULTIVERSION
void row_bn_input_grad_masked(float* dx, const float* dy, const float* y, const float* x, int64_t n,
                              float mean, float k, float grad_mean, float scale) {
  for (int64_t i = 0; i < n; ++i) {
    const float upstream = dy[i];
    const float g = y[i] > 0.0f ? upstream : 0.0f;
    dx[i] = (g - grad_mean - (x[i] - mean) * k) * scale;
  }
}

}  // namespace bnlab::kernels
