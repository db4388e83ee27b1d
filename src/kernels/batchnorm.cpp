// Batch-normalization kernels; see batchnorm.h for the math and its source. Each channel is
// reduced by one thread (static schedule), so results do not depend on timing. The row loops
// live in rows.cpp, compiled per instruction set.
#include "kernels/batchnorm.h"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "kernels/rows.h"

namespace bnlab::kernels {

template <typename T>
void bn_channel_sums(double* sum, const T* x, int64_t N, int64_t C, int64_t S) {
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < C; ++c) {
    double s = 0;
    for (int64_t n = 0; n < N; ++n) row_sum(x + (n * C + c) * S, S, &s);
    sum[c] = s;
  }
}

template <typename T>
void bn_channel_squared_deviations(double* squares, const T* x, const T* mean, int64_t N, int64_t C,
                                   int64_t S) {
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < C; ++c) {
    double q = 0;
    for (int64_t n = 0; n < N; ++n) row_squared_deviations(x + (n * C + c) * S, S, mean[c], &q);
    squares[c] = q;
  }
}

namespace {
// One channel's statistics, PyTorch's two passes: the second reads the channel again while it
// is still in L2.
template <typename T>
void channel_stats(T* mean, T* var_sum, const T* x, int64_t c, int64_t N, int64_t C, int64_t S) {
  double sum = 0, squares = 0;
  for (int64_t n = 0; n < N; ++n) row_sum(x + (n * C + c) * S, S, &sum);
  const T m = static_cast<T>(sum / static_cast<double>(N * S));
  for (int64_t n = 0; n < N; ++n) row_squared_deviations(x + (n * C + c) * S, S, m, &squares);
  *mean = m;
  *var_sum = static_cast<T>(squares);
}

template <typename T>
T invstd_of(T var_sum, int64_t count, double eps) {
  const T biased_var = var_sum / static_cast<T>(count);
  return static_cast<T>(1.0 / std::sqrt(static_cast<double>(biased_var) + eps));
}
}  // namespace

template <typename T>
void bn_stats(T* mean, T* var_sum, const T* x, int64_t N, int64_t C, int64_t S) {
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < C; ++c) channel_stats(mean + c, var_sum + c, x, c, N, C, S);
}

template <typename T>
void bn_invstd_from_var_sum(T* invstd, const T* var_sum, int64_t count, double eps, int64_t C) {
  for (int64_t c = 0; c < C; ++c) invstd[c] = invstd_of(var_sum[c], count, eps);
}

template <typename T>
void bn_invstd_from_var(T* invstd, const T* var, double eps, int64_t C) {
  for (int64_t c = 0; c < C; ++c) invstd[c] = T(1) / std::sqrt(var[c] + static_cast<T>(eps));
}

template <typename T>
void bn_update_running(T* running_mean, T* running_var, const T* mean, const T* var_sum,
                       int64_t count, double momentum, int64_t C) {
  for (int64_t c = 0; c < C; ++c) {
    if (running_mean) {
      running_mean[c] = static_cast<T>(momentum * mean[c] + (1 - momentum) * running_mean[c]);
    }
    if (running_var) {
      const double unbiased = var_sum[c] / static_cast<T>(count - 1);
      running_var[c] = static_cast<T>(momentum * unbiased + (1 - momentum) * running_var[c]);
    }
  }
}

namespace {
template <typename T>
void channel_affine(T* alpha, T* beta, T mean, T invstd, const T* weight, const T* bias, int64_t c) {
  *alpha = invstd * (weight ? weight[c] : T(1));
  // One rounding, as PyTorch's kernel compiled for AVX2/AVX-512 (the compiler fuses it there).
  *beta = std::fma(-mean, *alpha, bias ? bias[c] : T(0));
}

// y = row(x) per (n, c) row with the channel's alpha and beta; `row` is the affine map, or the
// affine map followed by ReLU.
template <typename T, typename Row>
void normalize_rows(T* y, const T* x, const T* mean, const T* invstd, const T* weight,
                    const T* bias, int64_t N, int64_t C, int64_t S, Row row) {
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t c = 0; c < C; ++c) {
      T alpha, beta;
      channel_affine(&alpha, &beta, mean[c], invstd[c], weight, bias, c);
      row(y + (n * C + c) * S, x + (n * C + c) * S, S, alpha, beta);
    }
  }
}
}  // namespace

template <typename T>
void bn_affine(T* alpha, T* beta, const T* mean, const T* invstd, const T* weight, const T* bias,
               int64_t C) {
  for (int64_t c = 0; c < C; ++c) channel_affine(alpha + c, beta + c, mean[c], invstd[c], weight, bias, c);
}

template <typename T>
void bn_normalize(T* y, const T* x, const T* mean, const T* invstd, const T* weight,
                  const T* bias, int64_t N, int64_t C, int64_t S) {
  normalize_rows(y, x, mean, invstd, weight, bias, N, C, S,
                 [](T* out, const T* in, int64_t n, T a, T b) { row_affine(out, in, n, a, b); });
}

template <typename T>
void bn_normalize_relu(T* y, const T* x, const T* mean, const T* invstd, const T* weight,
                       const T* bias, int64_t N, int64_t C, int64_t S) {
  normalize_rows(y, x, mean, invstd, weight, bias, N, C, S,
                 [](T* out, const T* in, int64_t n, T a, T b) { row_affine_relu(out, in, n, a, b); });
}

namespace {
template <typename T>
void channel_backward_sums(double* sum_dy, double* sum_dy_xmu, const T* dy, const T* x, T mean,
                           const T* relu_out, int64_t c, int64_t N, int64_t C, int64_t S) {
  double sum = 0, dot = 0;
  for (int64_t n = 0; n < N; ++n) {
    const int64_t row = (n * C + c) * S;
    if (relu_out) row_sum_dot_masked(dy + row, relu_out + row, x + row, S, mean, &sum, &dot);
    else row_sum_dot(dy + row, x + row, S, mean, &sum, &dot);
  }
  *sum_dy = sum;
  *sum_dy_xmu = dot;
}

template <typename T>
void input_grad_row(T* dx, const T* dy, const T* x, const T* mean, const T* invstd, const T* weight,
                    const T* relu_out, const double* sum_dy, const double* sum_dy_xmu, int64_t count,
                    int64_t n, int64_t c, int64_t C, int64_t S) {
  const T k = static_cast<T>(sum_dy_xmu[c]) * invstd[c] * invstd[c] / static_cast<T>(count);
  const T grad_mean = static_cast<T>(sum_dy[c]) / static_cast<T>(count);
  const T scale = invstd[c] * (weight ? weight[c] : T(1));
  const int64_t row = (n * C + c) * S;
  if (relu_out) {
    row_bn_input_grad_masked(dx + row, dy + row, relu_out + row, x + row, S, mean[c], k, grad_mean, scale);
  } else {
    row_bn_input_grad(dx + row, dy + row, x + row, S, mean[c], k, grad_mean, scale);
  }
}
}  // namespace

template <typename T>
void bn_backward_reduce(double* sum_dy, double* sum_dy_xmu, const T* dy, const T* x,
                        const T* mean, const T* relu_out, int64_t N, int64_t C, int64_t S) {
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < C; ++c) channel_backward_sums(sum_dy + c, sum_dy_xmu + c, dy, x, mean[c], relu_out, c, N, C, S);
}

template <typename T>
void bn_backward_input_train(T* dx, const T* dy, const T* x, const T* mean, const T* invstd,
                             const T* weight, const T* relu_out, const double* sum_dy,
                             const double* sum_dy_xmu, int64_t count, int64_t N, int64_t C,
                             int64_t S) {
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t c = 0; c < C; ++c) {
      input_grad_row(dx, dy, x, mean, invstd, weight, relu_out, sum_dy, sum_dy_xmu, count, n, c, C, S);
    }
  }
}

// Channel blocks, start to end: a block's values (N x S per channel, for `tensors` tensors) are
// read from memory once, sample by sample so that the reads stream, and stay in L2 for the passes
// after the first, where the split kernels stream the whole tensor through memory once per pass.
// Each channel still sums over n in order, so the bits are the split kernels'.
namespace {
constexpr int64_t kBlockBytes = 256 << 10;  // of a core's 2 MB L2 here
constexpr int64_t kMaxBlock = 64;         // channels per block, at most (stack arrays)

int64_t channels_per_block(int64_t N, int64_t S, int64_t tensors, size_t item) {
  const int64_t per_channel = N * S * tensors * static_cast<int64_t>(item);
  return std::clamp<int64_t>(kBlockBytes / std::max<int64_t>(per_channel, 1), 1, kMaxBlock);
}
}  // namespace

// Forward as a pipeline over this thread's blocks, three stages deep. Pass i over the samples
// normalizes block i-2 (reads L2, writes memory), sums the squared deviations of block i-1
// (L2) and sums block i (reads memory): the memory bus carries reads and writes at once, as a
// copy's does, instead of the passes taking turns. Each block's state lives in slot block % 3.
// (N, C) inputs (S = 1: BatchNorm1d after a Linear): one position per row, so the row loops
// would run one element a call; these loop over a chunk of channels instead, on one thread
// (N x C is small), with the same operations in the same order as the split kernels.
namespace {
constexpr int64_t kChannelChunk = 256;  // stack arrays, no allocation in forward or backward

template <typename T>
void forward_train_vectors(T* y, T* mean, T* var_sum, T* invstd, const T* x, const T* weight, const T* bias,
                           double eps, bool relu, int64_t N, int64_t C) {
  for (int64_t c0 = 0; c0 < C; c0 += kChannelChunk) {
    const int64_t len = std::min(kChannelChunk, C - c0);
    double sums[kChannelChunk] = {}, squares[kChannelChunk] = {};
    T alpha[kChannelChunk], beta[kChannelChunk];
    for (int64_t n = 0; n < N; ++n)
      for (int64_t j = 0; j < len; ++j) sums[j] += static_cast<double>(x[n * C + c0 + j]);
    for (int64_t j = 0; j < len; ++j) mean[c0 + j] = static_cast<T>(sums[j] / static_cast<double>(N));
    for (int64_t n = 0; n < N; ++n) {
      for (int64_t j = 0; j < len; ++j) {
        const T d = x[n * C + c0 + j] - mean[c0 + j];
        squares[j] += static_cast<double>(d * d);
      }
    }
    for (int64_t j = 0; j < len; ++j) {
      const int64_t c = c0 + j;
      var_sum[c] = static_cast<T>(squares[j]);
      invstd[c] = invstd_of(var_sum[c], N, eps);
      channel_affine(&alpha[j], &beta[j], mean[c], invstd[c], weight, bias, c);
    }
    for (int64_t n = 0; n < N; ++n) row_affine_channels(y + n * C + c0, x + n * C + c0, len, alpha, beta, relu);
  }
}

template <typename T>
void backward_train_vectors(T* dx, double* sum_dy, double* sum_dy_xmu, const T* dy, const T* x, const T* mean,
                            const T* invstd, const T* weight, const T* relu_out, int64_t N, int64_t C) {
  for (int64_t c0 = 0; c0 < C; c0 += kChannelChunk) {
    const int64_t len = std::min(kChannelChunk, C - c0);
    for (int64_t j = 0; j < len; ++j) sum_dy[c0 + j] = sum_dy_xmu[c0 + j] = 0;
    for (int64_t n = 0; n < N; ++n) {
      for (int64_t j = 0; j < len; ++j) {
        const int64_t i = n * C + c0 + j;
        const T upstream = dy[i];
        const T g = !relu_out || relu_out[i] > T(0) ? upstream : T(0);
        sum_dy[c0 + j] += static_cast<double>(g);
        sum_dy_xmu[c0 + j] += static_cast<double>(g * (x[i] - mean[c0 + j]));
      }
    }
    T k[kChannelChunk], grad_mean[kChannelChunk], scale[kChannelChunk];
    for (int64_t j = 0; j < len; ++j) {
      const int64_t c = c0 + j;
      k[j] = static_cast<T>(sum_dy_xmu[c]) * invstd[c] * invstd[c] / static_cast<T>(N);
      grad_mean[j] = static_cast<T>(sum_dy[c]) / static_cast<T>(N);
      scale[j] = invstd[c] * (weight ? weight[c] : T(1));
    }
    for (int64_t n = 0; n < N; ++n) {
      const int64_t i = n * C + c0;
      row_bn_input_grad_channels(dx + i, dy + i, relu_out ? relu_out + i : nullptr, x + i, len, mean + c0, k,
                                 grad_mean, scale);
    }
  }
}
}  // namespace

template <typename T>
void bn_forward_train(T* y, T* mean, T* var_sum, T* invstd, const T* x, const T* weight, const T* bias,
                      double eps, bool relu, int64_t N, int64_t C, int64_t S) {
  if (S == 1) {
    forward_train_vectors(y, mean, var_sum, invstd, x, weight, bias, eps, relu, N, C);
    return;
  }
  const int64_t B = channels_per_block(N, S, 2, sizeof(T));
  const int64_t blocks = (C + B - 1) / B;
  const double count = static_cast<double>(N * S);
#pragma omp parallel
  {
    // A fixed share of blocks per thread (what schedule(static) would give), in order.
    const int64_t threads = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t first = blocks * t / threads, last = blocks * (t + 1) / threads;
    double sums[3][kMaxBlock], squares[3][kMaxBlock];
    T alpha[3][kMaxBlock], beta[3][kMaxBlock];
    auto begin_of = [&](int64_t k) { return k * B; };
    auto end_of = [&](int64_t k) { return std::min(C, (k + 1) * B); };
    for (int64_t i = first; i < last + 2; ++i) {
      const int64_t a = i, b = i - 1, c = i - 2;  // blocks summed, squared, normalized
      const bool sum = a < last, square = b >= first && b < last, normalize = c >= first;
      if (sum) std::fill(sums[a % 3], sums[a % 3] + kMaxBlock, 0.0);
      if (square) std::fill(squares[b % 3], squares[b % 3] + kMaxBlock, 0.0);
      for (int64_t n = 0; n < N; ++n) {
        if (normalize) {
          for (int64_t ch = begin_of(c); ch < end_of(c); ++ch) {
            const int64_t row = (n * C + ch) * S, j = ch - begin_of(c);
            if (relu) row_affine_relu(y + row, x + row, S, alpha[c % 3][j], beta[c % 3][j]);
            else row_affine(y + row, x + row, S, alpha[c % 3][j], beta[c % 3][j]);
          }
        }
        if (square) {
          for (int64_t ch = begin_of(b); ch < end_of(b); ++ch)
            row_squared_deviations(x + (n * C + ch) * S, S, mean[ch], &squares[b % 3][ch - begin_of(b)]);
        }
        if (sum) {
          for (int64_t ch = begin_of(a); ch < end_of(a); ++ch) row_sum(x + (n * C + ch) * S, S, &sums[a % 3][ch - begin_of(a)]);
        }
      }
      if (sum) {
        for (int64_t ch = begin_of(a); ch < end_of(a); ++ch) mean[ch] = static_cast<T>(sums[a % 3][ch - begin_of(a)] / count);
      }
      if (square) {
        for (int64_t ch = begin_of(b); ch < end_of(b); ++ch) {
          const int64_t j = ch - begin_of(b);
          var_sum[ch] = static_cast<T>(squares[b % 3][j]);
          invstd[ch] = invstd_of(var_sum[ch], N * S, eps);
          channel_affine(&alpha[b % 3][j], &beta[b % 3][j], mean[ch], invstd[ch], weight, bias, ch);
        }
      }
    }
  }
}

template <typename T>
void bn_backward_train(T* dx, double* sum_dy, double* sum_dy_xmu, const T* dy, const T* x, const T* mean,
                       const T* invstd, const T* weight, const T* relu_out, int64_t N, int64_t C, int64_t S) {
  if (S == 1) {
    backward_train_vectors(dx, sum_dy, sum_dy_xmu, dy, x, mean, invstd, weight, relu_out, N, C);
    return;
  }
  const int64_t B = channels_per_block(N, S, relu_out ? 4 : 3, sizeof(T));
#pragma omp parallel for schedule(static)
  for (int64_t c0 = 0; c0 < C; c0 += B) {
    const int64_t c1 = std::min(C, c0 + B);
    for (int64_t c = c0; c < c1; ++c) sum_dy[c] = sum_dy_xmu[c] = 0;
    for (int64_t n = 0; n < N; ++n) {
      for (int64_t c = c0; c < c1; ++c) {
        const int64_t row = (n * C + c) * S;
        if (relu_out) row_sum_dot_masked(dy + row, relu_out + row, x + row, S, mean[c], &sum_dy[c], &sum_dy_xmu[c]);
        else row_sum_dot(dy + row, x + row, S, mean[c], &sum_dy[c], &sum_dy_xmu[c]);
      }
    }
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = c0; c < c1; ++c)
        input_grad_row(dx, dy, x, mean, invstd, weight, relu_out, sum_dy, sum_dy_xmu, N * S, n, c, C, S);
  }
}

template <typename T>
void bn_backward_input_eval(T* dx, const T* dy, const T* invstd, const T* weight,
                            const T* relu_out, int64_t N, int64_t C, int64_t S) {
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t c = 0; c < C; ++c) {
      const T scale = invstd[c] * (weight ? weight[c] : T(1));
      const int64_t row = (n * C + c) * S;
      if (relu_out) {
        for (int64_t s = 0; s < S; ++s) dx[row + s] = relu_out[row + s] > T(0) ? dy[row + s] * scale : T(0);
      } else {
        row_affine(dx + row, dy + row, S, scale, T(0));
      }
    }
  }
}

template <typename T>
void bn_backward_params(T* dweight, T* dbias, const double* sum_dy, const double* sum_dy_xmu,
                        const T* invstd, int64_t C) {
  for (int64_t c = 0; c < C; ++c) {
    if (dweight) dweight[c] += static_cast<T>(sum_dy_xmu[c] * invstd[c]);
    if (dbias) dbias[c] += static_cast<T>(sum_dy[c]);
  }
}

#define BNLAB_INSTANTIATE(T)                                                                   \
  template void bn_stats<T>(T*, T*, const T*, int64_t, int64_t, int64_t);                      \
  template void bn_channel_sums<T>(double*, const T*, int64_t, int64_t, int64_t);              \
  template void bn_channel_squared_deviations<T>(double*, const T*, const T*, int64_t, int64_t, \
                                                 int64_t);                                     \
  template void bn_invstd_from_var_sum<T>(T*, const T*, int64_t, double, int64_t);             \
  template void bn_invstd_from_var<T>(T*, const T*, double, int64_t);                          \
  template void bn_update_running<T>(T*, T*, const T*, const T*, int64_t, double, int64_t);    \
  template void bn_affine<T>(T*, T*, const T*, const T*, const T*, const T*, int64_t);          \
  template void bn_normalize<T>(T*, const T*, const T*, const T*, const T*, const T*, int64_t, \
                                int64_t, int64_t);                                             \
  template void bn_normalize_relu<T>(T*, const T*, const T*, const T*, const T*, const T*,     \
                                     int64_t, int64_t, int64_t);                               \
  template void bn_backward_reduce<T>(double*, double*, const T*, const T*, const T*,         \
                                      const T*, int64_t, int64_t, int64_t);                    \
  template void bn_backward_input_train<T>(T*, const T*, const T*, const T*, const T*,         \
                                           const T*, const T*, const double*, const double*,   \
                                           int64_t, int64_t, int64_t, int64_t);                \
  template void bn_backward_input_eval<T>(T*, const T*, const T*, const T*, const T*, int64_t, \
                                          int64_t, int64_t);                                   \
  template void bn_backward_params<T>(T*, T*, const double*, const double*, const T*, int64_t);      \
  template void bn_forward_train<T>(T*, T*, T*, T*, const T*, const T*, const T*, double, bool, int64_t, \
                                    int64_t, int64_t);                                             \
  template void bn_backward_train<T>(T*, double*, double*, const T*, const T*, const T*, const T*,     \
                                     const T*, const T*, int64_t, int64_t, int64_t);
BNLAB_INSTANTIATE(float)
BNLAB_INSTANTIATE(double)
#undef BNLAB_INSTANTIATE

}  // namespace bnlab::kernels
