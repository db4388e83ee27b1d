// Micro-benchmarks of the kernels in src/kernels at the seed network's shapes (Google Benchmark).
//   build/bench/kernels_bench [--threads=N] [--benchmark_filter=Bn] [--benchmark_repetitions=5]
//
// Bandwidth-bound kernels report bytes/s counting each tensor the operation must touch once
// (forward: read x, write y; backward: read x and dy, write dx), so they compare directly with
// a memcpy of the same tensor (read src, write dst), the floor for any pass over the data.
// Arithmetic-bound kernels (conv, GEMM) report FLOP/s, 2 per multiply-add.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bnlab/tensor.h"
#include "bnlab/threads.h"
#include "kernels/batchnorm/batchnorm.h"
#include "kernels/batchnorm/rows.h"
#include "kernels/conv.h"
#include "kernels/gemm.h"
#include "kernels/linear.h"
#include "kernels/pool/pool.h"
#include "kernels/transpose.h"
#include "kernels/winograd/winograd.h"

namespace {

namespace k = bnlab::kernels;

constexpr double kEps = 1e-5;

enum class Relu { Separate, Fused };

// Deterministic values in [-1, 1): the timing must not depend on the data, only its shape.
// 64-byte aligned, as bnlab's tensors and layer buffers are.
using Buffer = bnlab::AlignedVector<float>;
Buffer filled(int64_t n, uint32_t salt) {
  Buffer v(static_cast<size_t>(n));
  uint32_t s = 2463534242u ^ salt;
  for (auto& x : v) {
    s ^= s << 13, s ^= s >> 17, s ^= s << 5;  // xorshift32
    x = static_cast<float>(s >> 8) * (2.0f / 16777216.0f) - 1.0f;
  }
  return v;
}

// An (N, C, S) batch-norm problem with its per-channel state, from args {N, C, H, W}.
struct BnProblem {
  int64_t N, C, S;
  Buffer x, y, dy, dx, weight, bias, mean, var_sum, invstd, running_var, dweight, dbias;
  std::vector<double> sum_dy, sum_dy_xmu;

  explicit BnProblem(const benchmark::State& st)
      : N(st.range(0)), C(st.range(1)), S(st.range(2) * st.range(3)) {
    const int64_t n = N * C * S;
    x = filled(n, 1);
    dy = filled(n, 2);
    y.assign(n, 0.0f);
    dx.assign(n, 0.0f);
    weight = filled(C, 3);
    for (auto& w : weight) w += 1.5f;
    bias = filled(C, 4);
    mean.assign(C, 0.0f);
    var_sum.assign(C, 0.0f);
    invstd.assign(C, 0.0f);
    running_var.assign(C, 1.0f);
    dweight.assign(C, 0.0f);
    dbias.assign(C, 0.0f);
    sum_dy.assign(C, 0.0);
    sum_dy_xmu.assign(C, 0.0);
  }
  int64_t bytes() const { return N * C * S * static_cast<int64_t>(sizeof(float)); }
  int64_t count() const { return N * S; }

  // Training-mode forward as one process runs it: statistics and normalization fused channel
  // block by channel block (bn_forward_train); with Relu::Fused, BN+ReLU in the same pass.
  void forward_train(Relu relu = Relu::Separate) {
    k::bn_forward_train(y.data(), mean.data(), var_sum.data(), invstd.data(), x.data(), weight.data(), bias.data(),
                        kEps, relu == Relu::Fused, N, C, S);
  }

  // The same with the split kernels, the path a synchronized BN runs (without the exchanges):
  // PyTorch's two statistics passes, then the normalization, each a pass over the tensor.
  void forward_train_split(Relu relu = Relu::Separate) {
    k::bn_channel_sums(sum_dy.data(), x.data(), N, C, S);
    for (int64_t c = 0; c < C; ++c) mean[c] = static_cast<float>(sum_dy[c] / static_cast<double>(count()));
    k::bn_channel_squared_deviations(sum_dy.data(), x.data(), mean.data(), N, C, S);
    for (int64_t c = 0; c < C; ++c) var_sum[c] = static_cast<float>(sum_dy[c]);
    k::bn_invstd_from_var_sum(invstd.data(), var_sum.data(), count(), kEps, C);
    if (relu == Relu::Fused) {
      k::bn_normalize_relu(y.data(), x.data(), mean.data(), invstd.data(), weight.data(), bias.data(), N, C, S);
    } else {
      k::bn_normalize(y.data(), x.data(), mean.data(), invstd.data(), weight.data(), bias.data(), N, C, S);
    }
  }

  // Training-mode backward as one process runs it (bn_backward_train); with Relu::Fused, dy is
  // masked where the fused ReLU's forward was positive (recomputed from x).
  void backward_train(Relu relu = Relu::Separate) {
    k::bn_backward_train(dx.data(), sum_dy.data(), sum_dy_xmu.data(), dy.data(), x.data(), mean.data(), invstd.data(),
                         weight.data(), bias.data(), relu == Relu::Fused, N, C, S);
    k::bn_backward_params(dweight.data(), dbias.data(), sum_dy.data(), sum_dy_xmu.data(), invstd.data(), C);
  }

  // The split backward, a synchronized BN's.
  void backward_train_split(Relu relu = Relu::Separate) {
    const float* relu_out = relu == Relu::Fused ? y.data() : nullptr;
    k::bn_backward_reduce(sum_dy.data(), sum_dy_xmu.data(), dy.data(), x.data(), mean.data(), relu_out,
                          N, C, S);
    k::bn_backward_input_train(dx.data(), dy.data(), x.data(), mean.data(), invstd.data(), weight.data(),
                               relu_out, sum_dy.data(), sum_dy_xmu.data(), count(), N, C, S);
    k::bn_backward_params(dweight.data(), dbias.data(), sum_dy.data(), sum_dy_xmu.data(), invstd.data(), C);
  }
};

enum class Path { Fused, Split };

template <Relu R, Path P>
void BM_BnForwardTrain(benchmark::State& state) {
  BnProblem p(state);
  for (auto _ : state) {
    if constexpr (P == Path::Fused) p.forward_train(R);
    else p.forward_train_split(R);
    benchmark::DoNotOptimize(p.y.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * 2 * p.bytes());  // x in, y out
}

// The statistics alone, to see what they add to the normalization (BM_BnForwardEval): one
// process's one pass (bn_stats), and a synchronized BN's two (the sums, the squared deviations
// from the mean), each over the whole tensor. Bytes/s count the one tensor read.
void BM_BnOnePassStats(benchmark::State& state) {
  BnProblem p(state);
  for (auto _ : state) {
    k::bn_stats(p.mean.data(), p.var_sum.data(), p.x.data(), p.N, p.C, p.S);
    benchmark::DoNotOptimize(p.var_sum.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * p.bytes());
}

void BM_BnChannelSums(benchmark::State& state) {
  BnProblem p(state);
  for (auto _ : state) {
    k::bn_channel_sums(p.sum_dy.data(), p.x.data(), p.N, p.C, p.S);
    benchmark::DoNotOptimize(p.sum_dy.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * p.bytes());
}

void BM_BnSquaredDeviations(benchmark::State& state) {
  BnProblem p(state);
  p.forward_train();  // the mean
  for (auto _ : state) {
    k::bn_channel_squared_deviations(p.sum_dy.data(), p.x.data(), p.mean.data(), p.N, p.C, p.S);
    benchmark::DoNotOptimize(p.sum_dy.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * p.bytes());
}

void BM_BnForwardEval(benchmark::State& state) {
  BnProblem p(state);
  p.forward_train();  // a plausible mean; running_var stays 1
  for (auto _ : state) {
    k::bn_invstd_from_var(p.invstd.data(), p.running_var.data(), kEps, p.C);
    k::bn_normalize(p.y.data(), p.x.data(), p.mean.data(), p.invstd.data(), p.weight.data(),
                    p.bias.data(), p.N, p.C, p.S);
    benchmark::DoNotOptimize(p.y.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * 2 * p.bytes());  // x in, y out
}

template <Relu R, Path P>
void BM_BnBackwardTrain(benchmark::State& state) {
  BnProblem p(state);
  p.forward_train(R);  // mean, invstd (and the ReLU mask) as backward finds them
  for (auto _ : state) {
    if constexpr (P == Path::Fused) p.backward_train(R);
    else p.backward_train_split(R);
    benchmark::DoNotOptimize(p.dx.data());
    benchmark::ClobberMemory();
  }
  // x, dy in, dx out (the fused variant also reads y for the ReLU mask, not counted)
  state.SetBytesProcessed(state.iterations() * 3 * p.bytes());
}

// The floor for a pass over the tensor: one thread, as std::memcpy.
void BM_Memcpy(benchmark::State& state) {
  BnProblem p(state);
  for (auto _ : state) {
    std::memcpy(p.y.data(), p.x.data(), static_cast<size_t>(p.bytes()));
    benchmark::DoNotOptimize(p.y.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * 2 * p.bytes());  // src in, dst out
}

// The same copy cut into one contiguous block per thread, on bnlab's thread count: the floor for
// the (multi-threaded) BN kernels.
void BM_MemcpyThreads(benchmark::State& state) {
  BnProblem p(state);
  const int64_t n = p.N * p.C * p.S;
  for (auto _ : state) {
#pragma omp parallel
    {
      const int64_t t = omp_get_thread_num(), T = omp_get_num_threads();
      const int64_t begin = n * t / T, end = n * (t + 1) / T;
      std::memcpy(p.y.data() + begin, p.x.data() + begin, static_cast<size_t>(end - begin) * sizeof(float));
    }
    benchmark::DoNotOptimize(p.y.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * 2 * p.bytes());
}

// Convolution from args {N, Ci, H, W, Co, K}, stride 1, no padding (the seed network's).
struct ConvProblem {
  k::ConvGeometry g;
  int64_t N;
  int threads = bnlab::threads();
  Buffer x, w, bias, y, dy, dx, dw, dbias, col, dw_scratch;
  std::vector<double> bias_scratch;

  explicit ConvProblem(const benchmark::State& st)
      : g{.in_channels = st.range(1), .height = st.range(2), .width = st.range(3),
          .out_channels = st.range(4), .kernel_h = st.range(5), .kernel_w = st.range(5),
          .stride = 1, .padding = 0},
        N(st.range(0)) {
    const int64_t out = N * g.out_channels * g.out_height() * g.out_width();
    x = filled(N * g.in_channels * g.height * g.width, 1);
    w = filled(g.weight_size(), 2);
    bias = filled(g.out_channels, 3);
    y.assign(out, 0.0f);
    dy = filled(out, 4);
    dx.assign(x.size(), 0.0f);
    dw.assign(w.size(), 0.0f);
    dbias.assign(g.out_channels, 0.0f);
    col.assign(k::conv_scratch_size(g, threads), 0.0f);
    dw_scratch.assign(k::conv_weight_scratch_size(g, threads), 0.0f);
    bias_scratch.assign(k::conv_bias_scratch_size(g, N), 0.0);
  }
  // Multiply-adds of the forward pass; backward does twice as many (dx and dw).
  double macs() const { return static_cast<double>(N) * static_cast<double>(g.weight_size()) *
                               static_cast<double>(g.out_height() * g.out_width()); }
};

// The Winograd transforms of one sample of conv2 on the calling thread (12x12 tiles), as the
// convolution runs them (AVX-512 where the CPU has it) and the portable loops: the input's (32
// planes of 26x26 into V), the input gradient's (dV back into 32 planes of 26x26), the output's
// (M into 64 planes of 24x24, no epilogue, as in training) and the output gradient's (64 planes of
// 24x24 into dM). Bytes/s count the planes and the 16 transformed planes.
enum class Transform { Input, InputGrad, Output, OutputGrad };
enum class TransformPath { AsRun, Portable };
template <Transform X, TransformPath P>
void BM_WinogradTransform(benchmark::State& state) {
  const int64_t C = state.range(0);
  const k::WinogradTiles t{state.range(1), state.range(1)};
  const bool output_side = X == Transform::Output || X == Transform::OutputGrad;
  const int64_t planes = C * (output_side ? t.out_height() * t.out_width() : t.in_height() * t.in_width());
  const int64_t transformed = k::kWinogradPositions * k::winograd_plane_stride(C * t.count());
  const bool from_planes = X == Transform::Input || X == Transform::OutputGrad;
  const Buffer in = filled(from_planes ? planes : transformed, 5);
  Buffer out(static_cast<size_t>(from_planes ? transformed : planes), 0.0f);
  for (auto _ : state) {
    constexpr bool as_run = P == TransformPath::AsRun;
    if constexpr (X == Transform::Input) {
      as_run ? k::winograd_input(out.data(), in.data(), C, t) : k::winograd_input_portable(out.data(), in.data(), C, t);
    } else if constexpr (X == Transform::Output) {
      as_run ? k::winograd_output<float>(out.data(), in.data(), nullptr, C, t)
             : k::winograd_output_portable(out.data(), in.data(), nullptr, C, t, {});
    } else if constexpr (X == Transform::InputGrad) {
      as_run ? k::winograd_input_grad(out.data(), in.data(), C, t)
             : k::winograd_input_grad_portable(out.data(), in.data(), C, t);
    } else {
      as_run ? k::winograd_output_grad(out.data(), in.data(), C, t)
             : k::winograd_output_grad_portable(out.data(), in.data(), C, t);
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  const int64_t floats = planes + k::kWinogradPositions * C * t.count();
  state.SetBytesProcessed(state.iterations() * floats * static_cast<int64_t>(sizeof(float)));
}

void BM_Conv2dForward(benchmark::State& state) {
  ConvProblem p(state);
  for (auto _ : state) {
    k::conv2d_forward(p.y.data(), p.x.data(), p.w.data(), p.bias.data(), p.col.data(), p.g, p.N, p.threads);
    benchmark::DoNotOptimize(p.y.data());
    benchmark::ClobberMemory();
  }
  state.counters["FLOP/s"] = benchmark::Counter(2 * p.macs(), benchmark::Counter::kIsIterationInvariantRate,
                                                benchmark::Counter::kIs1000);
}

void BM_Conv2dBackward(benchmark::State& state) {
  ConvProblem p(state);
  for (auto _ : state) {
    k::conv2d_backward(p.dx.data(), p.dw.data(), p.dbias.data(), p.dy.data(), p.x.data(), p.w.data(),
                       p.col.data(), p.dw_scratch.data(), p.bias_scratch.data(), p.g, p.N, p.threads);
    benchmark::DoNotOptimize(p.dx.data());
    benchmark::ClobberMemory();
  }
  state.counters["FLOP/s"] = benchmark::Counter(4 * p.macs(), benchmark::Counter::kIsIterationInvariantRate,
                                                benchmark::Counter::kIs1000);
}

// fc1 of the seed network as the Linear layer runs it: the forward with its scratch (x
// transposed, then w x^T), the backward (dw, dx, dbias). Args {N, I, O}; FLOP/s counts 2 N I O a
// product: one in the forward, two in the backward.
void BM_LinearForward(benchmark::State& state) {
  const int64_t N = state.range(0), I = state.range(1), O = state.range(2);
  const Buffer x = filled(N * I, 1), w = filled(O * I, 2), bias = filled(O, 3);
  Buffer y(static_cast<size_t>(N * O)), scratch(static_cast<size_t>(k::linear_scratch_size(N, I, O)));
  for (auto _ : state) {
    k::linear_forward(y.data(), x.data(), w.data(), bias.data(), N, I, O, scratch.data());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.counters["FLOP/s"] = benchmark::Counter(2.0 * N * I * O, benchmark::Counter::kIsIterationInvariantRate,
                                                benchmark::Counter::kIs1000);
}

// The transpose before fc1's product (transpose.h), {rows, cols}: bytes/s count x read and xt
// written, as a copy's.
void BM_Transpose(benchmark::State& state) {
  const int64_t rows = state.range(0), cols = state.range(1);
  const Buffer x = filled(rows * cols, 1);
  Buffer xt(static_cast<size_t>(rows * cols));
  for (auto _ : state) {
    k::transpose(xt.data(), x.data(), rows, cols);
    benchmark::DoNotOptimize(xt.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * 2 * rows * cols * static_cast<int64_t>(sizeof(float)));
}

void BM_LinearBackward(benchmark::State& state) {
  const int64_t N = state.range(0), I = state.range(1), O = state.range(2);
  const Buffer x = filled(N * I, 1), w = filled(O * I, 2), dy = filled(N * O, 3);
  Buffer dx(static_cast<size_t>(N * I)), dw(static_cast<size_t>(O * I), 0.0f), dbias(static_cast<size_t>(O), 0.0f);
  for (auto _ : state) {
    k::linear_backward(dx.data(), dw.data(), dbias.data(), dy.data(), x.data(), w.data(), N, I, O);
    benchmark::DoNotOptimize(dx.data());
    benchmark::ClobberMemory();
  }
  state.counters["FLOP/s"] = benchmark::Counter(4.0 * N * I * O, benchmark::Counter::kIsIterationInvariantRate,
                                                benchmark::Counter::kIs1000);
}

// Row-major C (M x N) = op(A) (M x K) * op(B) (K x N), from args {M, N, K, trans_a, trans_b}.
template <bool Parallel>
void BM_Gemm(benchmark::State& state) {
  const int64_t M = state.range(0), N = state.range(1), K = state.range(2);
  const k::Trans ta = state.range(3) ? k::Trans::Yes : k::Trans::No;
  const k::Trans tb = state.range(4) ? k::Trans::Yes : k::Trans::No;
  const Buffer A = filled(M * K, 1), B = filled(K * N, 2);
  Buffer C(static_cast<size_t>(M * N), 0.0f);
  const int64_t lda = ta == k::Trans::No ? K : M, ldb = tb == k::Trans::No ? N : K;
  for (auto _ : state) {
    if constexpr (Parallel) {
      k::gemm_parallel(ta, tb, M, N, K, 1.0f, A.data(), lda, B.data(), ldb, 0.0f, C.data(), N);
    } else {
      k::gemm(ta, tb, M, N, K, 1.0f, A.data(), lda, B.data(), ldb, 0.0f, C.data(), N);
    }
    benchmark::DoNotOptimize(C.data());
    benchmark::ClobberMemory();
  }
  state.counters["FLOP/s"] = benchmark::Counter(2.0 * M * N * K, benchmark::Counter::kIsIterationInvariantRate,
                                                benchmark::Counter::kIs1000);
}

// The Winograd filter gradient's dU += dM V^T by AVX-512 dot products (gemm.h), the shape
// BM_Gemm/M:64/N:32/K:144/ta:0/tb:1 gives to the BLAS. Skipped on a CPU without AVX-512.
void BM_GemmNtAccumulate(benchmark::State& state) {
  const int64_t M = state.range(0), N = state.range(1), K = state.range(2);
  const Buffer A = filled(M * K, 1), B = filled(N * K, 2);
  Buffer C(static_cast<size_t>(M * N), 0.0f);
  if (!k::gemm_nt_accumulate_avx512(M, N, K, A.data(), K, B.data(), K, C.data(), N)) {
    state.SkipWithError("no AVX-512 on this CPU (or BNLAB_MAX_CPU_ISA)");
    return;
  }
  for (auto _ : state) {
    k::gemm_nt_accumulate_avx512(M, N, K, A.data(), K, B.data(), K, C.data(), N);
    benchmark::DoNotOptimize(C.data());
    benchmark::ClobberMemory();
  }
  state.counters["FLOP/s"] = benchmark::Counter(2.0 * M * N * K, benchmark::Counter::kIsIterationInvariantRate,
                                                benchmark::Counter::kIs1000);
}

// The seed network's BN inputs: conv1 output 64x32x26x26 and conv2 output 64x64x24x24.
// The statistics' row loops alone on one row of conv2's output (24 x 24 floats) that stays in L1:
// their arithmetic, without the memory traffic. items/s count the row's floats.
enum class StatsRow { Shifted, Lanes, SumDot };
template <StatsRow R>
void BM_BnStatsRow(benchmark::State& state) {
  const int64_t S = state.range(0);
  bnlab::AlignedVector<float> x(static_cast<size_t>(S)), dy(x.size());
  for (int64_t i = 0; i < S; ++i) x[i] = 0.25f * static_cast<float>(i % 17) - 1.0f, dy[i] = 0.01f * static_cast<float>(i % 13);
  double sum = 0, squares = 0;
  k::StatLanes lanes;
  for (auto _ : state) {
    if constexpr (R == StatsRow::Shifted) k::row_shifted_sums(x.data(), S, 0.5f, &sum, &squares);
    else if constexpr (R == StatsRow::Lanes) k::row_stat_lanes(x.data(), S, 0.5f, &lanes);
    else k::row_sum_dot(dy.data(), x.data(), S, 0.5f, &sum, &squares);
    benchmark::DoNotOptimize(sum);
    benchmark::DoNotOptimize(squares);
    benchmark::DoNotOptimize(lanes);
  }
  state.SetItemsProcessed(state.iterations() * S);
}

// The 2x2, stride-2 max-pool after conv2's BN and ReLU, training (with argmax), on bnlab's thread
// count: the forward reads the tensor and writes a quarter of it twice (values, argmax), the
// backward writes it and reads those quarters; BM_MemcpyThreads at the same shape is the floor.
void BM_MaxPool2x2(benchmark::State& state, bool backward) {
  BnProblem p(state);
  const k::PoolGeometry g{p.C, state.range(2), state.range(3), 2, 2, 0};
  const int64_t pooled = p.N * p.C * g.out_height() * g.out_width();
  Buffer y(static_cast<size_t>(pooled)), dy = filled(pooled, 4);
  std::vector<int32_t> argmax(static_cast<size_t>(pooled));
  k::maxpool2d_forward(y.data(), argmax.data(), p.x.data(), g, p.N);
  for (auto _ : state) {
    if (backward) k::maxpool2d_backward(p.dx.data(), dy.data(), argmax.data(), g, p.N);
    else k::maxpool2d_forward(y.data(), argmax.data(), p.x.data(), g, p.N);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * 3 / 2 * p.bytes());  // the tensor, and two quarters
}

void bn_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"N", "C", "H", "W"})->Args({64, 32, 26, 26})->Args({64, 64, 24, 24});
  b->Unit(benchmark::kMicrosecond)->UseRealTime();
}

// conv2 (the network's heaviest layer) and conv1, batch 64.
void conv_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"N", "Ci", "H", "W", "Co", "K"})->Args({64, 32, 26, 26, 64, 3})->Args({64, 1, 28, 28, 32, 3});
  b->Unit(benchmark::kMillisecond)->UseRealTime();
}

// The GEMMs of a training step at batch 64, and a square reference:
//   conv2 forward per sample   w (64x288) * col (288x576)
//   conv2 dw per sample        dy (64x576) * col^T
//   conv2 dcol per sample      w^T (288x64) * dy (64x576)
//   fc1 forward                x (64x9216) * W^T (9216x128)
//   conv2's Winograd products per sample and tile position (64 x 144 tiles, Ci 32, Co 64):
//     forward U V (64x32 * 32x144), input gradient U^T dM (32x64 * 64x144), weight gradient
//     dM V^T (64x144 * 144x32: K contiguous in both operands), and the same with V^T stored;
//     the three over two samples' 288 tiles (the grouping the README says did not pay)
void gemm_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"M", "N", "K", "ta", "tb"})
      ->Args({64, 576, 288, 0, 0})
      ->Args({64, 288, 576, 0, 1})
      ->Args({288, 576, 64, 1, 0})
      ->Args({64, 128, 9216, 0, 1})
      ->Args({64, 128, 9216, 0, 0})
      ->Args({32, 128, 9216, 0, 1})
      ->Args({32, 128, 9216, 0, 0})
      ->Args({128, 64, 9216, 0, 0})
      ->Args({128, 32, 9216, 0, 0})
      ->Args({128, 64, 9216, 0, 1})
      ->Args({64, 9216, 128, 0, 0})
      ->Args({128, 9216, 64, 1, 0})
      ->Args({64, 144, 32, 0, 0})
      ->Args({32, 144, 64, 1, 0})
      ->Args({64, 32, 144, 0, 1})
      ->Args({64, 32, 144, 0, 0})
      ->Args({64, 288, 32, 0, 0})
      ->Args({32, 288, 64, 1, 0})
      ->Args({64, 32, 288, 0, 1})
      ->Args({512, 512, 512, 0, 0});
  b->Unit(benchmark::kMicrosecond)->UseRealTime();
}

BENCHMARK(BM_BnForwardTrain<Relu::Separate, Path::Fused>)->Name("BM_BnForwardTrain")->Apply(bn_shapes);
BENCHMARK(BM_BnForwardTrain<Relu::Fused, Path::Fused>)->Name("BM_BnReluForwardTrain")->Apply(bn_shapes);
BENCHMARK(BM_BnForwardTrain<Relu::Separate, Path::Split>)->Name("BM_BnForwardTrainSplit")->Apply(bn_shapes);
BENCHMARK(BM_BnOnePassStats)->Apply(bn_shapes);
BENCHMARK(BM_BnStatsRow<StatsRow::Shifted>)->Name("BM_BnStatsRowShifted")->Arg(576);
BENCHMARK(BM_BnStatsRow<StatsRow::Lanes>)->Name("BM_BnStatsRowLanes")->Arg(576);
BENCHMARK(BM_BnStatsRow<StatsRow::SumDot>)->Name("BM_BnStatsRowSumDot")->Arg(576);
BENCHMARK(BM_BnChannelSums)->Apply(bn_shapes);
BENCHMARK(BM_BnSquaredDeviations)->Apply(bn_shapes);
BENCHMARK(BM_BnForwardEval)->Apply(bn_shapes);
BENCHMARK(BM_BnBackwardTrain<Relu::Separate, Path::Fused>)->Name("BM_BnBackwardTrain")->Apply(bn_shapes);
BENCHMARK(BM_BnBackwardTrain<Relu::Fused, Path::Fused>)->Name("BM_BnReluBackwardTrain")->Apply(bn_shapes);
BENCHMARK(BM_BnBackwardTrain<Relu::Separate, Path::Split>)->Name("BM_BnBackwardTrainSplit")->Apply(bn_shapes);
BENCHMARK_CAPTURE(BM_MaxPool2x2, forward, false)->Name("BM_MaxPool2x2Forward")->Apply(bn_shapes);
BENCHMARK_CAPTURE(BM_MaxPool2x2, backward, true)->Name("BM_MaxPool2x2Backward")->Apply(bn_shapes);
BENCHMARK(BM_Memcpy)->Apply(bn_shapes);
BENCHMARK(BM_MemcpyThreads)->Apply(bn_shapes);
BENCHMARK(BM_WinogradTransform<Transform::Input, TransformPath::AsRun>)
    ->Name("BM_WinogradInput")->ArgNames({"C", "tiles"})->Args({32, 12});
BENCHMARK(BM_WinogradTransform<Transform::Input, TransformPath::Portable>)
    ->Name("BM_WinogradInputPortable")->ArgNames({"C", "tiles"})->Args({32, 12});
BENCHMARK(BM_WinogradTransform<Transform::InputGrad, TransformPath::AsRun>)
    ->Name("BM_WinogradInputGrad")->ArgNames({"C", "tiles"})->Args({32, 12});
BENCHMARK(BM_WinogradTransform<Transform::InputGrad, TransformPath::Portable>)
    ->Name("BM_WinogradInputGradPortable")->ArgNames({"C", "tiles"})->Args({32, 12});
BENCHMARK(BM_WinogradTransform<Transform::Output, TransformPath::AsRun>)
    ->Name("BM_WinogradOutput")->ArgNames({"C", "tiles"})->Args({64, 12});
BENCHMARK(BM_WinogradTransform<Transform::Output, TransformPath::Portable>)
    ->Name("BM_WinogradOutputPortable")->ArgNames({"C", "tiles"})->Args({64, 12});
BENCHMARK(BM_WinogradTransform<Transform::OutputGrad, TransformPath::AsRun>)
    ->Name("BM_WinogradOutputGrad")->ArgNames({"C", "tiles"})->Args({64, 12});
BENCHMARK(BM_WinogradTransform<Transform::OutputGrad, TransformPath::Portable>)
    ->Name("BM_WinogradOutputGradPortable")->ArgNames({"C", "tiles"})->Args({64, 12});
BENCHMARK(BM_Conv2dForward)->Apply(conv_shapes);
BENCHMARK(BM_Conv2dBackward)->Apply(conv_shapes);
BENCHMARK(BM_Gemm<false>)->Name("BM_Gemm")->Apply(gemm_shapes);
BENCHMARK(BM_Gemm<true>)->Name("BM_GemmParallel")->Apply(gemm_shapes);
BENCHMARK(BM_LinearForward)->ArgNames({"N", "I", "O"})->Args({64, 9216, 128})->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_Transpose)->ArgNames({"rows", "cols"})->Args({64, 9216})->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_LinearBackward)->ArgNames({"N", "I", "O"})->Args({64, 9216, 128})->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_GemmNtAccumulate)->ArgNames({"M", "N", "K"})->Args({64, 32, 144})->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace

// Our one flag, --threads=N (default: all cores), is taken out before Google Benchmark's.
int main(int argc, char** argv) {
  int threads = 0;
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--threads=", 0) == 0) {
      threads = std::atoi(arg.c_str() + 10);
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  bnlab::set_threads(threads);
  benchmark::AddCustomContext("bnlab_threads", std::to_string(bnlab::threads()));
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
