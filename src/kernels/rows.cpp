#include "kernels/rows.h"

// x86-64-v4: AVX-512 (F, BW, DQ, VL) with FMA; x86-64-v3: AVX2 with FMA; default: SSE2.
#define BNLAB_MULTIVERSION __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))

namespace bnlab::kernels {
namespace {
constexpr int kLanes = 16;
}

BNLAB_MULTIVERSION
void row_sum(const float* x, int64_t n, double* sum) {
  double s[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) s[j] += x[i + j];
  double total = 0;
  for (int j = 0; j < kLanes; ++j) total += s[j];
  for (; i < n; ++i) total += x[i];
  *sum += total;
}

BNLAB_MULTIVERSION
void row_squared_deviations(const float* x, int64_t n, float mean, double* squares) {
  double q[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) {
      const float d = x[i + j] - mean;
      q[j] += d * d;  // the square in float, then widened
    }
  }
  double total = 0;
  for (int j = 0; j < kLanes; ++j) total += q[j];
  for (; i < n; ++i) {
    const float d = x[i] - mean;
    total += d * d;
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
  float s[kLanes] = {}, d[kLanes] = {};  // PyTorch also reduces a row in float, then adds in double
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) {
      s[j] += dy[i + j];
      d[j] += dy[i + j] * (x[i + j] - mean);
    }
  }
  double ts = 0, td = 0;
  for (int j = 0; j < kLanes; ++j) {
    ts += s[j];
    td += d[j];
  }
  for (; i < n; ++i) {
    ts += dy[i];
    td += dy[i] * (x[i] - mean);
  }
  *sum += ts;
  *dot += td;
}

BNLAB_MULTIVERSION
void row_bn_input_grad(float* dx, const float* dy, const float* x, int64_t n, float mean, float k,
                       float grad_mean, float scale) {
  for (int64_t i = 0; i < n; ++i) dx[i] = (dy[i] - grad_mean - (x[i] - mean) * k) * scale;
}

BNLAB_MULTIVERSION
void row_sum_dot_masked(const float* dy, const float* y, const float* x, int64_t n, float mean,
                        double* sum, double* dot) {
  float s[kLanes] = {}, d[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) {
      const float g = y[i + j] > 0.0f ? dy[i + j] : 0.0f;
      s[j] += g;
      d[j] += g * (x[i + j] - mean);
    }
  }
  double ts = 0, td = 0;
  for (int j = 0; j < kLanes; ++j) {
    ts += s[j];
    td += d[j];
  }
  for (; i < n; ++i) {
    const float g = y[i] > 0.0f ? dy[i] : 0.0f;
    ts += g;
    td += g * (x[i] - mean);
  }
  *sum += ts;
  *dot += td;
}

BNLAB_MULTIVERSION
void row_bn_input_grad_masked(float* dx, const float* dy, const float* y, const float* x, int64_t n,
                              float mean, float k, float grad_mean, float scale) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = y[i] > 0.0f ? dy[i] : 0.0f;
    dx[i] = (g - grad_mean - (x[i] - mean) * k) * scale;
  }
}

}  // namespace bnlab::kernels
