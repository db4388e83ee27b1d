// The batch-norm kernels fused for one process (batchnorm.h): statistics and normalization in
// one call, the backward reductions and the input gradient in another, channel block by channel
// block. A block's values (N x S per channel, for `tensors` tensors) are read from memory once,
// sample by sample so that the reads stream, and stay in L2 for the passes after the first,
// where the split kernels stream the whole tensor through memory once per pass. Each channel
// still sums over n in order, with the split kernels' row loops, so the bits are theirs.
#include <omp.h>

#include <algorithm>
#include <array>
#include <numeric>
#include <type_traits>

#include "kernels/batchnorm/batchnorm.h"
#include "kernels/batchnorm/batchnorm_channel.h"
#include "kernels/batchnorm/rows.h"
#include "kernels/pool/pool.h"
#include "kernels/prefetch.h"

namespace bnlab::kernels {
namespace {
using bn_detail::channel_affine;
using bn_detail::invstd_of;
using bn_detail::exact_var_sum;
using bn_detail::first_row_mean;
using bn_detail::moments_from_sums;
using bn_detail::moments_from_shifted_sums;

constexpr int64_t kBlockBytes = 256 << 10;  // of a core's 2 MB L2 here
constexpr int64_t kMaxBlock = 64;         // channels per block, at most (stack arrays)
constexpr int kMaxTeam = 256;             // threads that share the streamed normalization (a stack array)

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
                            const T* invstd, const T* weight, const T* bias, bool relu, int64_t N, int64_t C) {
  for (int64_t c0 = 0; c0 < C; c0 += kChannelChunk) {
    const int64_t len = std::min(kChannelChunk, C - c0);
    T alpha[kChannelChunk], beta[kChannelChunk], g[kChannelChunk];
    for (int64_t j = 0; j < len; ++j) {
      sum_dy[c0 + j] = sum_dy_xmu[c0 + j] = 0;
      channel_affine(&alpha[j], &beta[j], mean[c0 + j], invstd[c0 + j], weight, bias, c0 + j);
    }
    // dy, or dy through the fused ReLU's mask, recomputed from x (rows.h)
    auto upstream = [&](int64_t n) {
      const T* row = dy + n * C + c0;
      if (!relu) return row;
      row_relu_grad_channels(g, row, x + n * C + c0, len, alpha, beta);
      return static_cast<const T*>(g);
    };
    for (int64_t n = 0; n < N; ++n) {
      const T* up = upstream(n);
      for (int64_t j = 0; j < len; ++j) {
        const int64_t i = n * C + c0 + j;
        sum_dy[c0 + j] += static_cast<double>(up[j]);
        sum_dy_xmu[c0 + j] += static_cast<double>(up[j] * (x[i] - mean[c0 + j]));
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
      row_bn_input_grad_channels(dx + i, upstream(n), static_cast<const T*>(nullptr), x + i, len, mean + c0, k,
                                 grad_mean, scale);
    }
  }
}

// Whether the N rows of one channel, row_bytes apart, fall into few sets of a core's L2 cache:
// with a way of 64 KiB (1 MiB 16-way, AMD Zen 5 and Intel's server cores; Zen 4's 8 ways of 128
// KiB alias no less), rows whose distance has a large power-of-two factor start at only
// 64 KiB / gcd(row_bytes, 64 KiB) places. Conv2's output at batch 64 (64 x 64 x 24 x 24: rows
// 147,456 = 9 x 2^14 bytes apart) starts at 4, so a channel's 64 rows put 16 lines in each of
// their sets: a block does not stay in L2 between two passes, and the passes that count on it
// took 2-4x as long as streaming the tensor twice (AMD EPYC Zen 5).
bool rows_alias_in_l2(int64_t N, int64_t row_bytes) {
  constexpr int64_t kWayBytes = 64 << 10;
  const int64_t starts = kWayBytes / std::gcd(row_bytes, kWayBytes);
  return N > 2 * starts;
}

// One block of channels [c0, c1) of the forward: its statistics' lanes, shifts and affine maps.
template <typename T>
struct ForwardBlock {
  StatLanes lanes[kMaxBlock];
  T shift[kMaxBlock], alpha[kMaxBlock], beta[kMaxBlock];
  int64_t c0 = 0, c1 = 0;
};

// One block of channels [c0, c1) of the backward: the forward's affine maps (for the ReLU's mask)
// and the input gradient's coefficients, once the block's sums are in.
template <typename T>
struct BackwardBlock {
  T alpha[kMaxBlock], beta[kMaxBlock];
  bn_detail::GradCoefficients<T> coefficients[kMaxBlock];
  int64_t c0 = 0, c1 = 0;
};

// The 2x2, stride-2 max-pool after BN+ReLU, fused (bn_forward_train_relu_pool and its backward):
// the forward normalizes each (H, W) plane into a buffer in L1 and pools it from there into y and
// argmax; the backward rebuilds each plane's dy there from the pooled gradient and argmax, as the
// pool's backward would write it. Float planes only (the pool's kernels).
struct PoolPlanes {
  float* y = nullptr;  // forward: (N, C, H/2, W/2), and argmax (may be null)
  int32_t* argmax = nullptr;
  const float* dy = nullptr;  // backward: the pooled gradient, and the forward's argmax
  const int32_t* argmax_in = nullptr;
  int64_t H = 0, W = 0;
  int64_t pooled() const { return (H / 2) * (W / 2); }
};

// A plane's worth of buffer, where fused planes are normalized or rebuilt.
struct alignas(64) PlaneBuffer {
  float v[kMaxFusedPoolPlane];
};

template <typename T>
struct Forward {
  T *y, *mean, *var_sum, *invstd;
  const T *x, *weight, *bias;
  double eps;
  bool relu;
  int64_t N, C, S;
  const PoolPlanes* pool = nullptr;  // BN+ReLU+pool: y unused, the pooled planes written instead

  void begin(ForwardBlock<T>& b, int64_t c0, int64_t c1) const {
    b.c0 = c0, b.c1 = c1;
    for (int64_t c = c0; c < c1; ++c) b.lanes[c - c0] = StatLanes{}, b.shift[c - c0] = first_row_mean(x + c * S, S);
  }
  void sum_row(ForwardBlock<T>& b, int64_t n) const {
    for (int64_t c = b.c0; c < b.c1; ++c) {
      // The next sample's row, a block's run of rows away (prefetch.h): stat_lanes' share of a
      // training step's perf samples 3.2 -> 2.4-2.6% (AMD EPYC Zen 5).
      if (n + 1 < N) prefetch_bytes_l2(x + ((n + 1) * C + c) * S, S * static_cast<int64_t>(sizeof(T)));
      row_stat_lanes(x + (n * C + c) * S, S, b.shift[c - b.c0], &b.lanes[c - b.c0]);
    }
  }
  void finish(ForwardBlock<T>& b) const {
    for (int64_t c = b.c0; c < b.c1; ++c) {
      const int64_t j = c - b.c0;
      double sum, squares;
      stat_lanes_total(b.lanes[j], &sum, &squares);
      if (!moments_from_sums(&mean[c], &var_sum[c], sum, squares, b.shift[j], N * S))
        var_sum[c] = exact_var_sum(x, mean[c], c, N, C, S);
      invstd[c] = invstd_of(var_sum[c], N * S, eps);
      channel_affine(&b.alpha[j], &b.beta[j], mean[c], invstd[c], weight, bias, c);
    }
  }
  void normalize_row(const ForwardBlock<T>& b, int64_t n) const {
    for (int64_t c = b.c0; c < b.c1; ++c) {
      const int64_t row = (n * C + c) * S, j = c - b.c0;
      if constexpr (std::is_same_v<T, float>) {
        if (pool) {
          PlaneBuffer plane;
          row_affine_relu(plane.v, x + row, S, b.alpha[j], b.beta[j]);
          const int64_t at = (n * C + c) * pool->pooled();
          maxpool2x2_plane_forward(pool->y + at, pool->argmax ? pool->argmax + at : nullptr, plane.v, pool->H,
                                   pool->W);
          continue;
        }
      }
      if (relu) row_affine_relu(y + row, x + row, S, b.alpha[j], b.beta[j]);
      else row_affine(y + row, x + row, S, b.alpha[j], b.beta[j]);
    }
  }
};

// This thread's share of channels, [c0, c1) (what schedule(static) would give).
void thread_share(int64_t C, int64_t* c0, int64_t* c1) {
  const int64_t threads = omp_get_num_threads(), t = omp_get_thread_num();
  *c0 = C * t / threads, *c1 = C * (t + 1) / threads;
}

// BN+ReLU+pool's two halves in rounds (forward_train_planes, backward_train_planes), called by
// every thread of a team of at most kMaxTeam: in round r each thread runs first_pass(b0, b1) on
// the r-th block of its share [share0, share1) (statistics or sums, whose order of additions is
// the bits, so they stay with the share), publishes the block, and then all threads run
// second_pass(block, n) on the round's (sample, block) items as they come free (normalization or
// input gradient, element by element: the same bits whoever runs them).
template <typename Block, typename FirstPass, typename SecondPass>
void in_shared_rounds(std::array<const Block*, kMaxTeam>& published, const Block& block, int64_t C, int64_t N,
                      int64_t B, int64_t share0, int64_t share1, FirstPass first_pass, SecondPass second_pass) {
  const int64_t team = omp_get_num_threads(), t = omp_get_thread_num();
  const int64_t rounds = ((C + team - 1) / team + B - 1) / B;  // blocks in the largest share
  for (int64_t r = 0; r < rounds; ++r) {
    const int64_t b0 = share0 + r * B;
    if (b0 < share1) first_pass(b0, std::min(share1, b0 + B));
    published[t] = b0 < share1 ? &block : nullptr;
#pragma omp barrier
#pragma omp for schedule(dynamic)
    for (int64_t item = 0; item < N * team; ++item) {
      if (const Block* b = published[item % team]) second_pass(*b, item / team);
    }  // its barrier: no block is begun again before every thread is done with it
  }
}
}  // namespace

// Each thread takes a fixed share of the channels. Where a block of channels stays in L2 between
// two passes, the forward is a pipeline over the share's blocks, two stages deep: pass i over the
// samples normalizes block i-1 (reads L2, writes memory) and takes the statistics of block i
// (reads memory), so the memory bus carries reads and writes at once, as a copy's does. Where the
// rows alias in L2 (rows_alias_in_l2), it streams instead: the statistics of up to kMaxBlock
// channels sample by sample (a contiguous run of the share's rows each), then their
// normalization likewise (fused with the pool, shared among the threads). Each channel adds its
// rows in order either way: the same bits.
namespace {
template <typename T>
void forward_train_planes(const Forward<T>& f) {
  const int64_t N = f.N, C = f.C, S = f.S;
  const bool stream = rows_alias_in_l2(N, C * S * static_cast<int64_t>(sizeof(T)));
  const int64_t B = stream ? kMaxBlock : channels_per_block(N, S, 2, sizeof(T));
  std::array<const ForwardBlock<T>*, kMaxTeam> published{};  // shared rounds: each thread's block
  const bool share_normalization = f.pool && omp_get_max_threads() <= kMaxTeam;
#pragma omp parallel
  {
    int64_t c0, c1;
    thread_share(C, &c0, &c1);
    ForwardBlock<T> block[2];
    if (stream && share_normalization) {
      // BN+ReLU+pool, which runs only inside a training step, in rounds: each thread takes the
      // statistics of the next block of its share, then all threads normalize and pool the
      // round's blocks, (sample, block) by (sample, block) as they come free. Element by element
      // and plane by plane, the same bits whoever runs them. With static shares, one thread's
      // normalization took twice the other's there (conv2's: 0.87-0.90 against 0.40-0.46 ms, AMD
      // EPYC Zen 5, whichever channels it had; the step 1-3% slower). BN alone keeps its static
      // shares: called again on the same tensor, as in kernels_bench, each core reads back what
      // it read, and the shared normalization was 20-30% slower there.
      in_shared_rounds(
          published, block[0], C, N, B, c0, c1,
          [&](int64_t b0, int64_t b1) {
            f.begin(block[0], b0, b1);
            for (int64_t n = 0; n < N; ++n) f.sum_row(block[0], n);
            f.finish(block[0]);
          },
          [&](const ForwardBlock<T>& b, int64_t n) { f.normalize_row(b, n); });
    } else if (stream) {
      for (int64_t b0 = c0; b0 < c1; b0 += B) {
        f.begin(block[0], b0, std::min(c1, b0 + B));
        for (int64_t n = 0; n < N; ++n) f.sum_row(block[0], n);
        f.finish(block[0]);
        for (int64_t n = 0; n < N; ++n) f.normalize_row(block[0], n);
      }
    } else {
      const int64_t blocks = (c1 - c0 + B - 1) / B;
      for (int64_t i = 0; i <= blocks; ++i) {  // sum block i, normalize block i - 1
        ForwardBlock<T>& summed = block[i % 2];
        const ForwardBlock<T>& normalized = block[(i + 1) % 2];
        if (i < blocks) f.begin(summed, c0 + i * B, std::min(c1, c0 + (i + 1) * B));
        for (int64_t n = 0; n < N; ++n) {
          if (i > 0) f.normalize_row(normalized, n);
          if (i < blocks) f.sum_row(summed, n);
        }
        if (i < blocks) f.finish(summed);
      }
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
  forward_train_planes(Forward<T>{y, mean, var_sum, invstd, x, weight, bias, eps, relu, N, C, S});
}

void bn_forward_train_relu_pool(float* y, int32_t* argmax, float* mean, float* var_sum, float* invstd,
                                const float* x, const float* weight, const float* bias, double eps, int64_t N,
                                int64_t C, int64_t H, int64_t W) {
  const PoolPlanes pool{.y = y, .argmax = argmax, .H = H, .W = W};
  forward_train_planes(
      Forward<float>{nullptr, mean, var_sum, invstd, x, weight, bias, eps, true, N, C, H * W, &pool});
}

// The backward's two passes over a block of channels [c0, c1): the sums of dy and dy * (x - mean)
// sample by sample, then the input gradient. A block stays in L2 between them unless its rows
// alias there (rows_alias_in_l2), where the thread streams up to kMaxBlock channels of its share
// through each pass in turn, in runs of contiguous rows, as the forward does. Each channel adds
// its rows in order either way: the same bits. The fused ReLU's mask comes from x and the
// forward's affine map, not from its output: one tensor fewer to read in each pass.
namespace {
template <typename T>
void backward_train_planes(T* dx, double* sum_dy, double* sum_dy_xmu, const T* dy, const T* x, const T* mean,
                           const T* invstd, const T* weight, const T* bias, bool relu, int64_t N, int64_t C,
                           int64_t S, const PoolPlanes* pool) {
  const bool stream = rows_alias_in_l2(N, C * S * static_cast<int64_t>(sizeof(T)));
  const int64_t B = stream ? kMaxBlock : channels_per_block(N, S, 3, sizeof(T));
  std::array<const BackwardBlock<T>*, kMaxTeam> published{};  // shared rounds: each thread's block
  const bool share_input_grad = pool && omp_get_max_threads() <= kMaxTeam;
#pragma omp parallel
  {
    int64_t share0, share1;
    thread_share(C, &share0, &share1);
    BackwardBlock<T> block;
    PlaneBuffer plane;  // with the pool: a plane's dy, rebuilt
    auto upstream = [&](int64_t n, int64_t c) {
      if constexpr (std::is_same_v<T, float>) {
        if (pool) {
          const int64_t at = (n * C + c) * pool->pooled();
          maxpool2x2_plane_backward(plane.v, pool->dy + at, pool->argmax_in + at, pool->H, pool->W);
          return static_cast<const T*>(plane.v);
        }
      }
      return dy + (n * C + c) * S;
    };
    // The first pass over the block's channels [b0, b1): their sums, then their coefficients.
    auto sum_block = [&](int64_t b0, int64_t b1) {
      BackwardBlock<T>& b = block;
      b.c0 = b0, b.c1 = b1;
      for (int64_t c = b0; c < b1; ++c) {
        sum_dy[c] = sum_dy_xmu[c] = 0;
        channel_affine(&b.alpha[c - b0], &b.beta[c - b0], mean[c], invstd[c], weight, bias, c);
      }
      for (int64_t n = 0; n < N; ++n) {
        for (int64_t c = b0; c < b1; ++c) {
          const T* g = upstream(n, c);
          const T* xr = x + (n * C + c) * S;
          if (relu) {
            row_sum_dot_relu(g, xr, S, mean[c], b.alpha[c - b0], b.beta[c - b0], &sum_dy[c], &sum_dy_xmu[c]);
          } else {
            row_sum_dot(g, xr, S, mean[c], &sum_dy[c], &sum_dy_xmu[c]);
          }
        }
      }
      for (int64_t c = b0; c < b1; ++c)
        b.coefficients[c - b0] = bn_detail::grad_coefficients(sum_dy, sum_dy_xmu, invstd, weight, N * S, c);
    };
    // The second pass, sample n of a block whose sums are in: the input gradient.
    auto input_grad_row = [&](const BackwardBlock<T>& b, int64_t n) {
      for (int64_t c = b.c0; c < b.c1; ++c) {
        const auto [k, grad_mean, scale] = b.coefficients[c - b.c0];
        const int64_t row = (n * C + c) * S;
        const T* g = upstream(n, c);
        if (relu) {
          row_bn_input_grad_relu(dx + row, g, x + row, S, mean[c], k, grad_mean, scale, b.alpha[c - b.c0],
                                 b.beta[c - b.c0]);
        } else {
          row_bn_input_grad(dx + row, g, x + row, S, mean[c], k, grad_mean, scale);
        }
      }
    };
    if (stream && share_input_grad) {
      // BN+ReLU+pool in rounds, as its forward: the sums by share, the input gradients shared.
      in_shared_rounds(published, block, C, N, B, share0, share1, sum_block, input_grad_row);
    } else {
      for (int64_t b0 = share0; b0 < share1; b0 += B) {
        sum_block(b0, std::min(share1, b0 + B));
        for (int64_t n = 0; n < N; ++n) input_grad_row(block, n);
      }
    }
  }
}
}  // namespace

template <typename T>
void bn_backward_train(T* dx, double* sum_dy, double* sum_dy_xmu, const T* dy, const T* x, const T* mean,
                       const T* invstd, const T* weight, const T* bias, bool relu, int64_t N, int64_t C, int64_t S) {
  if (S == 1) {
    backward_train_vectors(dx, sum_dy, sum_dy_xmu, dy, x, mean, invstd, weight, bias, relu, N, C);
    return;
  }
  backward_train_planes(dx, sum_dy, sum_dy_xmu, dy, x, mean, invstd, weight, bias, relu, N, C, S,
                        static_cast<const PoolPlanes*>(nullptr));
}

void bn_backward_train_relu_pool(float* dx, double* sum_dy, double* sum_dy_xmu, const float* dy,
                                 const int32_t* argmax, const float* x, const float* mean, const float* invstd,
                                 const float* weight, const float* bias, int64_t N, int64_t C, int64_t H,
                                 int64_t W) {
  const PoolPlanes pool{.dy = dy, .argmax_in = argmax, .H = H, .W = W};
  backward_train_planes(dx, sum_dy, sum_dy_xmu, static_cast<const float*>(nullptr), x, mean, invstd, weight, bias,
                        true, N, C, H * W, &pool);
}

#define BNLAB_INSTANTIATE(T)                                                                         \
  template void bn_forward_train<T>(T*, T*, T*, T*, const T*, const T*, const T*, double, bool, int64_t, \
                                    int64_t, int64_t);                                             \
  template void bn_backward_train<T>(T*, double*, double*, const T*, const T*, const T*, const T*,     \
                                     const T*, const T*, bool, int64_t, int64_t, int64_t);
BNLAB_INSTANTIATE(float)
BNLAB_INSTANTIATE(double)
#undef BNLAB_INSTANTIATE

}  // namespace bnlab::kernels
