// The batch-norm kernels fused for one process (batchnorm.h): statistics and normalization in
// one call, the backward reductions and the input gradient in another, channel block by channel
// block. A block's values (N x S per channel, for `tensors` tensors) are read from memory once,
// sample by sample so that the reads stream, and stay in L2 for the passes after the first,
// where the split kernels stream the whole tensor through memory once per pass. Each channel
// still sums over n in order, with the split kernels' row loops, so the bits are theirs.
#include <omp.h>

#include <algorithm>

#include "kernels/batchnorm/batchnorm.h"
#include "kernels/batchnorm/batchnorm_channel.h"
#include "kernels/batchnorm/rows.h"

namespace bnlab::kernels {
namespace {
using bn_detail::channel_affine;
using bn_detail::input_grad_row;
using bn_detail::invstd_of;
using bn_detail::moments_from_shifted_sums;

constexpr int64_t kBlockBytes = 256 << 10;  // of a core's 2 MB L2 here
constexpr int64_t kMaxBlock = 64;         // channels per block, at most (stack arrays)

int64_t channels_per_block(int64_t N, int64_t S, int64_t tensors, size_t item) {
  const int64_t per_channel = N * S * tensors * static_cast<int64_t>(item);
  return std::clamp<int64_t>(kBlockBytes / std::max<int64_t>(per_channel, 1), 1, kMaxBlock);
}

// (N, C) inputs (S = 1: BatchNorm1d after a Linear): one position per row, so the row loops
// would run one element a call; these loop over a chunk of channels instead, on one thread
// (N x C is small), with the same operations in the same order as the split kernels.
constexpr int64_t kChannelChunk = 256;  // stack arrays, no allocation in forward or backward

template <typename T>
void forward_train_vectors(T* y, T* mean, T* var_sum, T* invstd, const T* x, const T* weight, const T* bias,
                           double eps, bool relu, int64_t N, int64_t C) {
  for (int64_t c0 = 0; c0 < C; c0 += kChannelChunk) {
    const int64_t len = std::min(kChannelChunk, C - c0);
    double sums[kChannelChunk] = {}, squares[kChannelChunk] = {};
    T alpha[kChannelChunk], beta[kChannelChunk];
    const T* shift = x + c0;  // sample 0's values, as bn_stats shifts each channel
    for (int64_t n = 0; n < N; ++n) row_shifted_sums_channels(x + n * C + c0, len, shift, sums, squares);
    for (int64_t j = 0; j < len; ++j) {
      const int64_t c = c0 + j;
      moments_from_shifted_sums(&mean[c], &var_sum[c], sums[j], squares[j], shift[j], N);
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
      const auto coefficients = bn_detail::grad_coefficients(sum_dy, sum_dy_xmu, invstd, weight, N, c0 + j);
      k[j] = coefficients.k;
      grad_mean[j] = coefficients.grad_mean;
      scale[j] = coefficients.scale;
    }
    for (int64_t n = 0; n < N; ++n) {
      const int64_t i = n * C + c0;
      row_bn_input_grad_channels(dx + i, dy + i, relu_out ? relu_out + i : nullptr, x + i, len, mean + c0, k,
                                 grad_mean, scale);
    }
  }
}
}  // namespace

// Forward as a pipeline over this thread's blocks, two stages deep. Pass i over the samples
// normalizes block i-1 (reads L2, writes memory) and takes the statistics of block i in one pass
// (reads memory): the memory bus carries reads and writes at once, as a copy's does, instead of
// the passes taking turns. Each block's state lives in slot block % 2.
template <typename T>
void bn_forward_train(T* y, T* mean, T* var_sum, T* invstd, const T* x, const T* weight, const T* bias,
                      double eps, bool relu, int64_t N, int64_t C, int64_t S) {
  if (S == 1) {
    forward_train_vectors(y, mean, var_sum, invstd, x, weight, bias, eps, relu, N, C);
    return;
  }
  const int64_t B = channels_per_block(N, S, 2, sizeof(T));
  const int64_t blocks = (C + B - 1) / B;
#pragma omp parallel
  {
    // A fixed share of blocks per thread (what schedule(static) would give), in order.
    const int64_t threads = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t first = blocks * t / threads, last = blocks * (t + 1) / threads;
    double sums[2][kMaxBlock], squares[2][kMaxBlock];
    T alpha[2][kMaxBlock], beta[2][kMaxBlock];
    auto begin_of = [&](int64_t k) { return k * B; };
    auto end_of = [&](int64_t k) { return std::min(C, (k + 1) * B); };
    auto shift_of = [&](int64_t ch) { return x[ch * S]; };  // sample 0's first value, as bn_stats
    for (int64_t i = first; i < last + 1; ++i) {
      const int64_t a = i, b = i - 1;  // blocks summed, normalized
      const bool sum = a < last, normalize = b >= first;
      if (sum) {
        std::fill(sums[a % 2], sums[a % 2] + kMaxBlock, 0.0);
        std::fill(squares[a % 2], squares[a % 2] + kMaxBlock, 0.0);
      }
      for (int64_t n = 0; n < N; ++n) {
        if (normalize) {
          for (int64_t ch = begin_of(b); ch < end_of(b); ++ch) {
            const int64_t row = (n * C + ch) * S, j = ch - begin_of(b);
            if (relu) row_affine_relu(y + row, x + row, S, alpha[b % 2][j], beta[b % 2][j]);
            else row_affine(y + row, x + row, S, alpha[b % 2][j], beta[b % 2][j]);
          }
        }
        if (sum) {
          for (int64_t ch = begin_of(a); ch < end_of(a); ++ch) {
            const int64_t j = ch - begin_of(a);
            row_shifted_sums(x + (n * C + ch) * S, S, shift_of(ch), &sums[a % 2][j], &squares[a % 2][j]);
          }
        }
      }
      if (sum) {
        for (int64_t ch = begin_of(a); ch < end_of(a); ++ch) {
          const int64_t j = ch - begin_of(a);
          moments_from_shifted_sums(&mean[ch], &var_sum[ch], sums[a % 2][j], squares[a % 2][j], shift_of(ch), N * S);
          invstd[ch] = invstd_of(var_sum[ch], N * S, eps);
          channel_affine(&alpha[a % 2][j], &beta[a % 2][j], mean[ch], invstd[ch], weight, bias, ch);
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


#define BNLAB_INSTANTIATE(T)                                                                         \
  template void bn_forward_train<T>(T*, T*, T*, T*, const T*, const T*, const T*, double, bool, int64_t, \
                                    int64_t, int64_t);                                             \
  template void bn_backward_train<T>(T*, double*, double*, const T*, const T*, const T*, const T*,     \
                                     const T*, const T*, int64_t, int64_t, int64_t);
BNLAB_INSTANTIATE(float)
BNLAB_INSTANTIATE(double)
#undef BNLAB_INSTANTIATE

}  // namespace bnlab::kernels
