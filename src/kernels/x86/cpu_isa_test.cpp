// The run-time choice of instruction set (cpu_isa.h), and every multi-versioned variant this CPU
// can run against the portable (baseline) one: the kernels documented to give the same bits on
// every instruction set (BN's statistics, the shifted sums of row_moments.cpp, the fixed-order
// float-free sums, ReLU, dropout, the max-pool, the Winograd input transform) bitwise; those where
// the AVX2/AVX-512 clones fuse a multiply-add that baseline rounds twice (the affine map, the BN
// backward rows, the Winograd output epilogue) within kFusedTolerance. tests/CMakeLists.txt also
// runs the whole kernels_test binary under BNLAB_MAX_CPU_ISA=avx2 and =baseline.
#include "kernels/x86/cpu_isa.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "bnlab/error.h"
#include "gradcheck.h"
#include "kernels/batchnorm/batchnorm.h"
#include "kernels/batchnorm/rows.h"
#include "kernels/vector_rows.h"
#include "kernels/winograd/winograd.h"

namespace bnlab::kernels {
namespace {

// One fused multiply-add against a separate multiply and add differs by about an ulp of the
// product; relative to the values' scale.
constexpr double kFusedTolerance = 1e-5;

TEST(CpuIsa, NamesRoundTripAndABadOneNamesTheVariable) {
  for (const Isa isa : {Isa::Avx512, Isa::Avx2, Isa::Baseline}) EXPECT_EQ(parse_isa(isa_name(isa), "x"), isa);
  try {
    parse_isa("sse9", "BNLAB_MAX_CPU_ISA");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "BNLAB_MAX_CPU_ISA: 'sse9' is not one of avx512, avx2, baseline");
  }
}

// Restores the cap a test changed.
class CapGuard {
 public:
  explicit CapGuard(Isa cap) : saved_(max_cpu_isa()) { set_max_cpu_isa(cap); }
  ~CapGuard() { set_max_cpu_isa(saved_); }
  CapGuard(const CapGuard&) = delete;
  CapGuard& operator=(const CapGuard&) = delete;

 private:
  Isa saved_;
};

TEST(CpuIsa, TheCapLowersTheChoiceAndNeverRaisesIt) {
  {
    CapGuard cap(Isa::Baseline);
    EXPECT_EQ(cpu_isa(), Isa::Baseline);
    EXPECT_FALSE(avx512_enabled());
  }
  {
    CapGuard cap(Isa::Avx2);
    EXPECT_EQ(cpu_isa(), std::min(Isa::Avx2, cpu_best_isa()));
    EXPECT_FALSE(avx512_enabled());
  }
  CapGuard cap(Isa::Avx512);
  EXPECT_EQ(cpu_isa(), cpu_best_isa());
}

// What each kernel computes, run under one cap.
struct Outputs {
  std::vector<float> exact, fused;  // to compare bitwise / within kFusedTolerance
};

Outputs run_kernels(Isa cap_to) {
  CapGuard cap(cap_to);
  const int64_t N = 3, C = 5, S = 7 * 9 + 2, n = N * C * S;
  const auto x = testing::to_float(testing::random_vector(n, 11, 2.0, 0.5));
  const auto dy = testing::to_float(testing::random_vector(n, 12));
  const auto weight = testing::to_float(testing::random_vector(C, 13, 1.0, 1.5));
  const auto bias = testing::to_float(testing::random_vector(C, 14));
  Outputs out;
  auto exact = [&](const std::vector<float>& v) { out.exact.insert(out.exact.end(), v.begin(), v.end()); };
  auto fused = [&](const std::vector<float>& v) { out.fused.insert(out.fused.end(), v.begin(), v.end()); };
  auto exact_d = [&](double v) { exact({static_cast<float>(v), static_cast<float>(v - static_cast<float>(v))}); };
  auto fused_d = [&](double v) { fused({static_cast<float>(v)}); };

  // BN's statistics and the rows under them: the same bits on every instruction set.
  std::vector<float> mean(C), var_sum(C), invstd(C), y(n), dx(n);
  bn_stats(mean.data(), var_sum.data(), x.data(), N, C, S);
  exact(mean), exact(var_sum);
  bn_forward_train(y.data(), mean.data(), var_sum.data(), invstd.data(), x.data(), weight.data(), bias.data(), 1e-5,
                   true, N, C, S);
  exact(mean), exact(var_sum), exact(invstd), fused(y);
  double sum = 0, squares = 0;
  row_shifted_sums(x.data(), n, x[3], &sum, &squares);
  exact_d(sum), exact_d(squares);
  // The fast statistics' lanes over two rows, each ending in a tail shorter than 32: every lane.
  StatLanes lanes;
  row_stat_lanes(x.data(), n, 0.125f, &lanes);  // a run of 512, then 463
  row_stat_lanes(x.data() + n / 2, n / 2 - 3, 0.125f, &lanes);
  for (int j = 0; j < 32; ++j) exact_d(lanes.sum[j]), exact_d(lanes.squares[j]);
  std::vector<double> sums(S), sq(S);
  row_shifted_sums_channels(x.data(), S, x.data() + S, sums.data(), sq.data());
  for (int64_t s = 0; s < S; ++s) exact_d(sums[s]), exact_d(sq[s]);
  sum = squares = 0;
  row_sum(x.data(), n, &sum);
  row_squared_deviations(x.data(), n, 0.25f, &squares);
  exact_d(sum), exact_d(squares);
  // The rows with a multiply-add.
  row_affine(y.data(), x.data(), n, 1.3f, -0.2f);
  fused(y);
  row_bn_input_grad(dx.data(), dy.data(), x.data(), n, 0.1f, 0.7f, 0.05f, 1.1f);
  fused(dx);
  row_bn_input_grad_masked(dx.data(), dy.data(), x.data(), x.data(), n, 0.1f, 0.7f, 0.05f, 1.1f);
  fused(dx);
  double dsum = 0, dot = 0;
  row_sum_dot(dy.data(), x.data(), n, 0.1f, &dsum, &dot);
  fused_d(dsum), fused_d(dot);
  // ReLU, dropout, max-pool: comparisons and one multiply each.
  row_relu(y.data(), x.data(), n);
  exact(y);
  std::vector<uint8_t> keep(n);
  row_dropout_pairs(y.data(), keep.data(), x.data(), 0, n / 2, 5, 1u << 22, 4.0f / 3.0f);
  exact(y);
  std::vector<float> pooled(4 * 8);
  std::vector<int32_t> idx(4 * 8);
  plane_maxpool2x2(pooled.data(), idx.data(), x.data(), 16, 4, 8);
  exact(pooled);
  // Winograd: the input transform adds and subtracts; the output one ends in the affine map.
  const WinogradTiles t{3, 4};
  const int64_t Cw = 2, size = kWinogradPositions * winograd_plane_stride(Cw * t.count());
  std::vector<float> V(size, 0.0f), yw(Cw * t.out_height() * t.out_width());
  winograd_input(V.data(), x.data(), Cw, t);
  exact(V);
  const ConvEpilogue<float> e{.scale = weight.data(), .shift = bias.data(), .relu = true};
  winograd_output(yw.data(), V.data(), bias.data(), Cw, t, e);
  fused(yw);
  return out;
}

class IsaVariants : public ::testing::TestWithParam<Isa> {};

TEST_P(IsaVariants, GiveThePortableResults) {
  const Isa isa = GetParam();
  if (isa > cpu_best_isa()) GTEST_SKIP() << "the CPU has no " << isa_name(isa);
  const Outputs baseline = run_kernels(Isa::Baseline), variant = run_kernels(isa);
  ASSERT_EQ(variant.exact.size(), baseline.exact.size());
  for (size_t i = 0; i < baseline.exact.size(); ++i) {
    // Bitwise: compared as bits, so that NaN and -0 count too.
    ASSERT_EQ(std::memcmp(&variant.exact[i], &baseline.exact[i], sizeof(float)), 0)
        << isa_name(isa) << " exact output " << i << ": " << variant.exact[i] << " vs " << baseline.exact[i];
  }
  ASSERT_EQ(variant.fused.size(), baseline.fused.size());
  for (size_t i = 0; i < baseline.fused.size(); ++i) {
    const double b = baseline.fused[i];
    ASSERT_NEAR(variant.fused[i], b, kFusedTolerance * (1.0 + std::fabs(b))) << isa_name(isa) << " output " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(EveryClone, IsaVariants, ::testing::Values(Isa::Avx2, Isa::Avx512),
                         [](const auto& info) { return std::string(isa_name(info.param)); });

}  // namespace
}  // namespace bnlab::kernels
