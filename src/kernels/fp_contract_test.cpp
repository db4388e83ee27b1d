// The floating-point contraction that bit-exactness depends on (src/kernels/kernels.cmake sets it
// per file): batchnorm/rows.cpp and winograd/winograd_output.cpp compiled with
// -ffp-contract=fast, so that x * alpha + beta is one fused multiply-add where the CPU has FMA
// (PyTorch's vectorized BN does the same); batchnorm/row_moments.cpp with -ffp-contract=off, so
// that each square of the statistics rounds before it is added, the same bits with or without
// FMA. Each test picks inputs where the fused and the separate roundings differ, and fails if the
// file was compiled the other way. The baseline clones (a CPU without FMA, or BNLAB_MAX_CPU_ISA=baseline)
// never fuse; the fused checks are skipped there.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/batchnorm/rows.h"
#include "kernels/winograd/winograd.h"
#include "kernels/x86/cpu_isa.h"

namespace bnlab::kernels {
namespace {

// The AVX2 and AVX-512 clones have FMA; the baseline one (or a CPU without) never fuses.
bool clones_have_fma() { return cpu_isa() >= Isa::Avx2; }

// x * alpha rounded, then + beta rounded (volatile: the test's own file must not fuse either).
float separate(float x, float alpha, float beta) {
  volatile float product = x * alpha;
  return product + beta;
}

// An (x, alpha, beta) whose fused and separate results differ.
struct Affine {
  float x, alpha, beta;
};
Affine distinguishing_affine() {
  for (int i = 1;; ++i) {
    const float x = 1.0f + static_cast<float>(i) * 0x1p-23f, alpha = 1.0f + static_cast<float>(3 * i) * 0x1p-23f;
    const float beta = -(x * alpha);
    if (std::fma(x, alpha, beta) != separate(x, alpha, beta)) return {x, alpha, beta};
  }
}

TEST(FpContract, RowAffineFusesTheMultiplyAdd) {
  if (!clones_have_fma()) GTEST_SKIP() << "no FMA on this CPU";
  const Affine a = distinguishing_affine();
  std::vector<float> x(64, a.x), y(64);
  row_affine(y.data(), x.data(), 64, a.alpha, a.beta);
  for (float v : y) ASSERT_EQ(v, std::fma(a.x, a.alpha, a.beta));
}

TEST(FpContract, WinogradOutputFusesTheEpilogue) {
  if (!clones_have_fma()) GTEST_SKIP() << "no FMA on this CPU";
  const Affine a = distinguishing_affine();
  const WinogradTiles t{1, 1};
  const int64_t plane = winograd_plane_stride(1);
  // M with only position 0 set: the tile's top-left output is M[0] (A^T M A), the others 0.
  std::vector<float> M(16 * plane, 0.0f), y(4);
  M[0] = a.x;
  const ConvEpilogue<float> e{.scale = &a.alpha, .shift = &a.beta};
  winograd_output_portable(y.data(), M.data(), nullptr, 1, t, e);
  EXPECT_EQ(y[0], std::fma(a.x, a.alpha, a.beta));
}

TEST(FpContract, ShiftedSumsRoundEachSquare) {
  // Two deviations in lane 0 (elements 0 and 32, the shift elsewhere): squares = d0^2 + d1^2,
  // each square rounded to double, where a fused d1 * d1 + d0^2 rounds once. A shift about 2^-20
  // gives the deviations some 44 bits, so that their squares are inexact in double.
  auto mantissa = [](uint32_t i, uint32_t salt) { return static_cast<float>((i * salt) % (1u << 23)) * 0x1p-23f; };
  for (uint32_t i = 1; i < 1000; ++i) {
    const float shift = 0x1p-20f * (1.0f + mantissa(i, 40503u));
    const float x0 = 1.0f + mantissa(i, 2654435761u), x1 = 1.0f + mantissa(i, 2246822519u);
    const double d0 = static_cast<double>(x0) - shift, d1 = static_cast<double>(x1) - shift;
    volatile double s0 = d0 * d0, s1 = d1 * d1;
    const double rounded = s0 + s1;
    if (std::fma(d1, d1, static_cast<double>(s0)) == rounded) continue;
    std::vector<float> x(33, shift);
    x[0] = x0;
    x[32] = x1;
    double sum = 0, squares = 0;
    row_shifted_sums(x.data(), 33, shift, &sum, &squares);
    EXPECT_EQ(squares, rounded) << "x0 " << x0 << " x1 " << x1 << " shift " << shift;
    return;
  }
  FAIL() << "no inputs where fusing changes the sum of squares";
}

}  // namespace
}  // namespace bnlab::kernels
