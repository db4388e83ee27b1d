// kernels_bench's benchmarks of the normalizations beside BN, at the seed network's shapes
// (conv1's and conv2's outputs at batch 64, as BM_Bn*): GroupNorm with 8 groups, InstanceNorm
// (a group per channel), LayerNorm (one group of C*H*W values, S = 1) through the per-sample-group
// kernels; Batch Renormalization (BN's statistics, r and d, BN's normalization with the corrected
// coefficients) through the BN kernels. Compare each with BM_Memcpy* of the same shape.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <vector>

#include "bnlab/tensor.h"
#include "kernels/batchnorm/batchnorm.h"
#include "kernels/batchnorm/renorm.h"
#include "kernels/groupnorm/groupnorm.h"

namespace {

namespace k = bnlab::kernels;
using Buffer = bnlab::AlignedVector<float>;
constexpr double kEps = 1e-5;

Buffer values(int64_t n, uint32_t salt) {
  Buffer v(static_cast<size_t>(n));
  uint32_t s = 2463534242u ^ salt;
  for (auto& x : v) {
    s ^= s << 13, s ^= s >> 17, s ^= s << 5;  // xorshift32, values in [-1, 1)
    x = static_cast<float>(s >> 8) * (2.0f / 16777216.0f) - 1.0f;
  }
  return v;
}

// Which per-sample-group layer: the groups of args {N, C, H, W}.
enum class Grouping { Group8, Instance, Layer };

struct GroupProblem {
  int64_t N, C, S, G;
  Buffer x, y, dy, dx, weight, bias, dweight, dbias;
  std::vector<double> mean, invstd, partial;

  GroupProblem(const benchmark::State& st, Grouping grouping)
      : N(st.range(0)), C(st.range(1)), S(st.range(2) * st.range(3)) {
    G = grouping == Grouping::Group8 ? 8 : C;
    if (grouping == Grouping::Layer) C *= S, S = 1, G = 1;  // LayerNorm: the weight has every value
    const int64_t n = N * C * S;
    x = values(n, 1), dy = values(n, 2), y.assign(n, 0.0f), dx.assign(n, 0.0f);
    weight = values(C, 3), bias = values(C, 4), dweight.assign(C, 0.0f), dbias.assign(C, 0.0f);
    mean.assign(N * G, 0.0), invstd.assign(N * G, 0.0), partial.assign(2 * N * C, 0.0);
  }
  int64_t bytes() const { return N * C * S * static_cast<int64_t>(sizeof(float)); }
  void forward() {
    k::gn_stats(mean.data(), invstd.data(), nullptr, x.data(), kEps, N, C, S, G);
    k::gn_normalize(y.data(), x.data(), mean.data(), invstd.data(), weight.data(), bias.data(), N, C, S, G);
  }
  void backward() {
    k::gn_backward(dx.data(), dweight.data(), dbias.data(), partial.data(), dy.data(), x.data(), mean.data(),
                   invstd.data(), weight.data(), N, C, S, G);
  }
};

template <Grouping Gr>
void BM_GroupedNormForwardTrain(benchmark::State& state) {
  GroupProblem p(state, Gr);
  for (auto _ : state) {
    p.forward();
    benchmark::DoNotOptimize(p.y.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * 2 * p.bytes());  // x in, y out (statistics: x again)
}

template <Grouping Gr>
void BM_GroupedNormBackwardTrain(benchmark::State& state) {
  GroupProblem p(state, Gr);
  p.forward();
  for (auto _ : state) {
    p.backward();
    benchmark::DoNotOptimize(p.dx.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * 3 * p.bytes());  // dy, x in, dx out
}

struct RenormProblem {
  int64_t N, C, S;
  Buffer x, y, dy, dx, weight, bias, dweight, dbias, mean, var_sum, invstd, running_mean, running_var, r, d,
      invstd_r, weight_r, bias_d;
  std::vector<double> sum_dy, sum_dy_xmu;

  explicit RenormProblem(const benchmark::State& st) : N(st.range(0)), C(st.range(1)), S(st.range(2) * st.range(3)) {
    const int64_t n = N * C * S;
    x = values(n, 1), dy = values(n, 2), y.assign(n, 0.0f), dx.assign(n, 0.0f);
    weight = values(C, 3), bias = values(C, 4);
    for (Buffer* b : {&dweight, &dbias, &mean, &var_sum, &invstd, &running_mean, &r, &d, &invstd_r, &weight_r, &bias_d})
      b->assign(C, 0.0f);
    running_var.assign(C, 1.0f);
    sum_dy.assign(C, 0.0), sum_dy_xmu.assign(C, 0.0);
  }
  int64_t bytes() const { return N * C * S * static_cast<int64_t>(sizeof(float)); }
  // As BatchNorm's renorm_forward, without the running-statistics update (a few C-long loops).
  void forward() {
    k::bn_stats(mean.data(), var_sum.data(), x.data(), N, C, S);
    k::bn_invstd_from_var_sum(invstd.data(), var_sum.data(), N * S, kEps, C);
    k::renorm_correction(r.data(), d.data(), mean.data(), var_sum.data(), N * S, running_mean.data(),
                         running_var.data(), kEps, 3.0, 5.0, C);
    k::renorm_coefficients(invstd_r.data(), weight_r.data(), bias_d.data(), invstd.data(), r.data(), d.data(),
                           weight.data(), bias.data(), C);
    k::bn_normalize(y.data(), x.data(), mean.data(), invstd_r.data(), weight.data(), bias_d.data(), N, C, S);
  }
  void backward() {
    k::bn_backward_reduce(sum_dy.data(), sum_dy_xmu.data(), dy.data(), x.data(), mean.data(),
                          static_cast<const float*>(nullptr), N, C, S);
    k::renorm_backward_params(dweight.data(), dbias.data(), sum_dy.data(), sum_dy_xmu.data(), invstd.data(), r.data(),
                              d.data(), C);
    k::bn_backward_input_train(dx.data(), dy.data(), x.data(), mean.data(), invstd.data(), weight_r.data(),
                               static_cast<const float*>(nullptr), sum_dy.data(), sum_dy_xmu.data(), N * S, N, C, S);
  }
};

void BM_RenormForwardTrain(benchmark::State& state) {
  RenormProblem p(state);
  for (auto _ : state) {
    p.forward();
    benchmark::DoNotOptimize(p.y.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * 2 * p.bytes());
}

void BM_RenormBackwardTrain(benchmark::State& state) {
  RenormProblem p(state);
  p.forward();
  for (auto _ : state) {
    p.backward();
    benchmark::DoNotOptimize(p.dx.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * 3 * p.bytes());
}

void norm_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"N", "C", "H", "W"})->Args({64, 32, 26, 26})->Args({64, 64, 24, 24});
  b->Unit(benchmark::kMicrosecond)->UseRealTime();
}

}  // namespace

BENCHMARK(BM_GroupedNormForwardTrain<Grouping::Group8>)->Name("BM_GroupNormForwardTrain")->Apply(norm_shapes);
BENCHMARK(BM_GroupedNormBackwardTrain<Grouping::Group8>)->Name("BM_GroupNormBackwardTrain")->Apply(norm_shapes);
BENCHMARK(BM_GroupedNormForwardTrain<Grouping::Instance>)->Name("BM_InstanceNormForwardTrain")->Apply(norm_shapes);
BENCHMARK(BM_GroupedNormBackwardTrain<Grouping::Instance>)->Name("BM_InstanceNormBackwardTrain")->Apply(norm_shapes);
BENCHMARK(BM_GroupedNormForwardTrain<Grouping::Layer>)->Name("BM_LayerNormForwardTrain")->Apply(norm_shapes);
BENCHMARK(BM_GroupedNormBackwardTrain<Grouping::Layer>)->Name("BM_LayerNormBackwardTrain")->Apply(norm_shapes);
BENCHMARK(BM_RenormForwardTrain)->Apply(norm_shapes);
BENCHMARK(BM_RenormBackwardTrain)->Apply(norm_shapes);
