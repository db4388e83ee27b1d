// Inner loops over one contiguous row, the hot spots of batch norm, ReLU and dropout. The float
// versions are compiled for AVX-512, AVX2 and baseline x86-64 and picked at run time by the
// loader (GCC function multi-versioning, target_clones), so one binary runs fast here and
// correctly on a CPU without AVX-512. The templates serve double (the finite-difference tests).
// Reductions keep 32 partial sums in a fixed order (lanes.h), so that they vectorize and give the
// same bits on every instruction set; the templates below sum in order. rows.cpp is compiled with
// floating-point contraction: PyTorch's vectorized x * alpha + beta is one fused multiply-add on
// CPUs that have it (AVX2 and up), and where x * alpha is large (a large mean, a tiny variance)
// a separate multiply and add would round to 0.06 instead of to y's own precision.
#pragma once

#include <cstdint>

namespace bnlab::kernels {

// sum += sum(x), in double.
void row_sum(const float* x, int64_t n, double* sum);
// squares += sum(float((x - mean)^2)): each square rounded to float, as PyTorch does, summed in
// double.
void row_squared_deviations(const float* x, int64_t n, float mean, double* squares);
// sum += sum(x - shift), squares += sum((x - shift)^2), in double from the float x (the
// difference exact, the square one rounding): the one-pass statistics of batch norm, shifted by
// a value of the channel so that the squares do not cancel (batchnorm_channel.h). In
// row_moments.cpp, compiled without contraction.
void row_shifted_sums(const float* x, int64_t n, float shift, double* sum, double* squares);
// The fast one-pass statistics of batch norm, lane by lane: element i of a row goes to lane
// i % 32; each lane sums x in double and (x - shift)^2 with the difference, the square and runs of
// up to 16 additions in float, then widened to double (row_stat_lanes, in row_moments.cpp,
// compiled without contraction). A channel's rows add into one StatLanes in order, and
// stat_lanes_total adds the lanes up, pairwise, in a fixed order: the same bits on every
// instruction set and for any order in which the caller visits other channels. The shift is near
// the channel's mean (batchnorm_channel.h says when the result is trusted). A tail of a row
// shorter than 32 counts as padded with zeros (sums) and the shift (squares).
struct alignas(64) StatLanes {
  double sum[32] = {};
  double squares[32] = {};
};
void row_stat_lanes(const float* x, int64_t n, float shift, StatLanes* lanes);
inline void stat_lanes_total(const StatLanes& lanes, double* sum, double* squares) {
  double s[32], q[32];
  for (int j = 0; j < 32; ++j) s[j] = lanes.sum[j], q[j] = lanes.squares[j];
  for (int width = 16; width > 0; width /= 2) {
    for (int j = 0; j < width; ++j) s[j] += s[j + width], q[j] += q[j + width];
  }
  *sum = s[0];
  *squares = q[0];
}
// y = x * alpha + beta
void row_affine(float* y, const float* x, int64_t n, float alpha, float beta);
// y = max(x * alpha + beta, 0)
void row_affine_relu(float* y, const float* x, int64_t n, float alpha, float beta);
// sum += sum(dy); dot += sum(dy * (x - mean))
void row_sum_dot(const float* dy, const float* x, int64_t n, float mean, double* sum, double* dot);
// As row_sum_dot with dy taken as 0 where y <= 0 (the backward of a ReLU fused after BN).
void row_sum_dot_masked(const float* dy, const float* y, const float* x, int64_t n, float mean,
                        double* sum, double* dot);
// As row_sum_dot_masked and row_bn_input_grad_masked with the fused ReLU's mask recomputed from
// x: dy counts where x * alpha + beta > 0, the forward's own value (row_affine_relu: the same
// operations in the same file, so the same rounding on every instruction set), so that the
// backward need not read the forward's output.
void row_sum_dot_relu(const float* dy, const float* x, int64_t n, float mean, float alpha, float beta, double* sum,
                      double* dot);
void row_bn_input_grad_relu(float* dx, const float* dy, const float* x, int64_t n, float mean, float k,
                            float grad_mean, float scale, float alpha, float beta);
// g = dy where x * alpha + beta > 0, else 0, per channel (BatchNorm1d's rows, row_affine_channels).
void row_relu_grad_channels(float* g, const float* dy, const float* x, int64_t C, const float* alpha,
                            const float* beta);
// dx = (dy - grad_mean - (x - mean) * k) * scale
void row_bn_input_grad(float* dx, const float* dy, const float* x, int64_t n, float mean, float k,
                       float grad_mean, float scale);
void row_bn_input_grad_masked(float* dx, const float* dy, const float* y, const float* x, int64_t n,
                              float mean, float k, float grad_mean, float scale);

// Across the C channels of one (N, C) sample (S = 1), per-channel parameters: the loops above
// with vectors for alpha, beta, mean, k, grad_mean and scale (the same operations, the same bits).
void row_shifted_sums_channels(const float* x, int64_t C, const float* shift, double* sum, double* squares);
void row_affine_channels(float* y, const float* x, int64_t C, const float* alpha, const float* beta, bool relu);
void row_bn_input_grad_channels(float* dx, const float* dy, const float* y, const float* x, int64_t C,
                                const float* mean, const float* k, const float* grad_mean, const float* scale);

template <typename T>
void row_shifted_sums_channels(const T* x, int64_t C, const T* shift, double* sum, double* squares) {
  for (int64_t c = 0; c < C; ++c) {
    const double d = static_cast<double>(x[c]) - static_cast<double>(shift[c]);
    sum[c] += d;
    squares[c] += d * d;
  }
}
template <typename T>
void row_affine_channels(T* y, const T* x, int64_t C, const T* alpha, const T* beta, bool relu) {
  for (int64_t c = 0; c < C; ++c) {
    const T v = x[c] * alpha[c] + beta[c];
    y[c] = relu && v < T(0) ? T(0) : v;
  }
}
template <typename T>
void row_bn_input_grad_channels(T* dx, const T* dy, const T* y, const T* x, int64_t C, const T* mean, const T* k,
                                const T* grad_mean, const T* scale) {
  for (int64_t c = 0; c < C; ++c) {
    const T g = !y || y[c] > T(0) ? dy[c] : T(0);
    dx[c] = (g - grad_mean[c] - (x[c] - mean[c]) * k[c]) * scale[c];
  }
}

template <typename T>
void row_sum(const T* x, int64_t n, double* sum) {
  for (int64_t i = 0; i < n; ++i) *sum += x[i];
}
template <typename T>
void row_squared_deviations(const T* x, int64_t n, T mean, double* squares) {
  for (int64_t i = 0; i < n; ++i) *squares += (x[i] - mean) * (x[i] - mean);
}
template <typename T>
void row_shifted_sums(const T* x, int64_t n, T shift, double* sum, double* squares) {
  for (int64_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(x[i]) - static_cast<double>(shift);
    *sum += d;
    *squares += d * d;
  }
}
template <typename T>
void row_stat_lanes(const T* x, int64_t n, T shift, StatLanes* lanes) {
  for (int64_t i = 0; i < n; ++i) {
    lanes->sum[i % 32] += x[i];
    const T d = x[i] - shift;
    lanes->squares[i % 32] += d * d;
  }
}
template <typename T>
void row_affine(T* y, const T* x, int64_t n, T alpha, T beta) {
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * alpha + beta;
}
template <typename T>
void row_affine_relu(T* y, const T* x, int64_t n, T alpha, T beta) {
  for (int64_t i = 0; i < n; ++i) {
    const T v = x[i] * alpha + beta;
    y[i] = v < T(0) ? T(0) : v;
  }
}
template <typename T>
void row_sum_dot(const T* dy, const T* x, int64_t n, T mean, double* sum, double* dot) {
  for (int64_t i = 0; i < n; ++i) {
    *sum += dy[i];
    *dot += dy[i] * (x[i] - mean);
  }
}
template <typename T>
void row_sum_dot_masked(const T* dy, const T* y, const T* x, int64_t n, T mean, double* sum, double* dot) {
  for (int64_t i = 0; i < n; ++i) {
    const T g = y[i] > T(0) ? dy[i] : T(0);
    *sum += g;
    *dot += g * (x[i] - mean);
  }
}
template <typename T>
void row_bn_input_grad_masked(T* dx, const T* dy, const T* y, const T* x, int64_t n, T mean, T k,
                              T grad_mean, T scale) {
  for (int64_t i = 0; i < n; ++i) {
    const T g = y[i] > T(0) ? dy[i] : T(0);
    dx[i] = (g - grad_mean - (x[i] - mean) * k) * scale;
  }
}
template <typename T>
void row_sum_dot_relu(const T* dy, const T* x, int64_t n, T mean, T alpha, T beta, double* sum, double* dot) {
  for (int64_t i = 0; i < n; ++i) {
    const T g = x[i] * alpha + beta > T(0) ? dy[i] : T(0);
    *sum += g;
    *dot += g * (x[i] - mean);
  }
}
template <typename T>
void row_bn_input_grad_relu(T* dx, const T* dy, const T* x, int64_t n, T mean, T k, T grad_mean, T scale, T alpha,
                            T beta) {
  for (int64_t i = 0; i < n; ++i) {
    const T g = x[i] * alpha + beta > T(0) ? dy[i] : T(0);
    dx[i] = (g - grad_mean - (x[i] - mean) * k) * scale;
  }
}
template <typename T>
void row_relu_grad_channels(T* g, const T* dy, const T* x, int64_t C, const T* alpha, const T* beta) {
  for (int64_t c = 0; c < C; ++c) g[c] = x[c] * alpha[c] + beta[c] > T(0) ? dy[c] : T(0);
}
template <typename T>
void row_bn_input_grad(T* dx, const T* dy, const T* x, int64_t n, T mean, T k, T grad_mean, T scale) {
  for (int64_t i = 0; i < n; ++i) dx[i] = (dy[i] - grad_mean - (x[i] - mean) * k) * scale;
}

}  // namespace bnlab::kernels
