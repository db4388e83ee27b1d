#include "kernels/pool/pool.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "gradcheck.h"
#include "kernels/vector_rows.h"
#include "kernels/x86/cpu_isa.h"

namespace bnlab::kernels {
namespace {

TEST(MaxPoolKernel, ForwardTakesWindowMaxima) {
  const PoolGeometry g{1, 4, 4, 2, 2, 0};
  const std::vector<float> x = {1, 2, 5, 0,  //
                                3, 4, 1, 1,  //
                                0, 0, 9, 8,  //
                                7, 0, 8, 9};
  std::vector<float> y(4);
  std::vector<int32_t> idx(4);
  maxpool2d_forward(y.data(), idx.data(), x.data(), g, 1);
  EXPECT_EQ(y, (std::vector<float>{4, 5, 7, 9}));
  EXPECT_EQ(idx, (std::vector<int32_t>{5, 2, 12, 10}));  // ties: the first maximum, as PyTorch
}

TEST(MaxPoolKernel, NanPropagatesAsInPyTorch) {
  const PoolGeometry g{1, 2, 2, 2, 2, 0};
  const std::vector<float> x = {1, std::numeric_limits<float>::quiet_NaN(), 5, 0};
  std::vector<float> y(1);
  std::vector<int32_t> idx(1);
  maxpool2d_forward(y.data(), idx.data(), x.data(), g, 1);
  EXPECT_TRUE(std::isnan(y[0]));
}

// Inference asks for the maxima without their positions: the same values, NaN rule included.
TEST(MaxPoolKernel, WithoutArgmaxTheSameMaxima) {
  for (const PoolGeometry g : {PoolGeometry{3, 8, 10, 2, 2, 0}, PoolGeometry{2, 7, 7, 3, 2, 1}}) {
    const int64_t N = 2, out = N * g.channels * g.out_height() * g.out_width();
    std::vector<float> x = testing::to_float(testing::random_vector(N * g.channels * g.height * g.width, 3));
    x[5] = std::numeric_limits<float>::quiet_NaN();
    x[17] = x[16];  // a tie
    std::vector<float> with(out), without(out);
    std::vector<int32_t> idx(out);
    maxpool2d_forward(with.data(), idx.data(), x.data(), g, N);
    maxpool2d_forward(without.data(), static_cast<int32_t*>(nullptr), x.data(), g, N);
    for (int64_t i = 0; i < out; ++i) {
      if (std::isnan(with[i])) EXPECT_TRUE(std::isnan(without[i])) << i;
      else EXPECT_EQ(with[i], without[i]) << i;
    }
  }
}

// The 2x2 pool on AVX-512 (the seed network's) against the portable loop: the same maxima and
// indices at widths 2 to 32, odd ones too (the last column unused), with ties, NaNs (first in a
// window, later in one) and equal NaN-free neighbours. On a CPU without AVX-512 it declines.
TEST(MaxPoolKernel, Avx512GivesThePortableMaximaAndIndices) {
  const bool cpu_has_avx512 = avx512_enabled();
  for (const int64_t W : {2, 5, 24, 25, 31, 32, 33}) {
    const int64_t H = 6, Ho = H / 2, Wo = W / 2;
    std::vector<float> x = testing::to_float(testing::random_vector(H * W, 4));
    for (size_t i = 0; i + 7 < x.size(); i += 7) x[i + 1] = x[i];  // ties
    x[0] = std::numeric_limits<float>::quiet_NaN();                 // a window's first value
    x[W + 1 < static_cast<int64_t>(x.size()) ? W + 1 : 1] = std::numeric_limits<float>::quiet_NaN();  // a later one
    for (const bool with_idx : {true, false}) {
      std::vector<float> fast(Ho * Wo, -7.0f), portable(Ho * Wo, -7.0f);
      std::vector<int32_t> fast_idx(Ho * Wo, -1), portable_idx(Ho * Wo, -1);
      const bool took = plane_maxpool2x2_avx512(fast.data(), with_idx ? fast_idx.data() : nullptr, x.data(), W, Ho, Wo);
      EXPECT_EQ(took, cpu_has_avx512 && W <= 32) << W;
      if (!took) continue;
      plane_maxpool2x2(portable.data(), with_idx ? portable_idx.data() : nullptr, x.data(), W, Ho, Wo);
      EXPECT_EQ(0, std::memcmp(fast.data(), portable.data(), fast.size() * sizeof(float))) << "width " << W;
      EXPECT_EQ(fast_idx, portable_idx) << "width " << W;
    }
  }
}

// The 2x2 backward on AVX-512 against the definition (0 everywhere, plus each gradient at its
// window's maximum), bit for bit: widths 2 to 33 (odd ones leave the last column out, as do odd
// heights the last row), maxima anywhere in their windows (the forward's indices over ties and
// NaNs), gradients of -0 (land as +0) and NaN, and a dx full of garbage beforehand. On a CPU
// without AVX-512 it declines.
TEST(MaxPoolKernel, Avx512BackwardRoutesEachGradientToItsMaximum) {
  const bool cpu_has_avx512 = avx512_enabled();
  for (const int64_t W : {2, 5, 24, 25, 31, 32, 33}) {
    for (const int64_t H : {6, 7}) {
      const int64_t Ho = H / 2, Wo = W / 2;
      std::vector<float> x = testing::to_float(testing::random_vector(H * W, 5));
      for (size_t i = 0; i + 5 < x.size(); i += 5) x[i + 1] = x[i];  // ties
      x[W + 1 < static_cast<int64_t>(x.size()) ? W + 1 : 1] = std::numeric_limits<float>::quiet_NaN();
      std::vector<float> y(Ho * Wo);
      std::vector<int32_t> idx(Ho * Wo);
      plane_maxpool2x2(y.data(), idx.data(), x.data(), W, Ho, Wo);
      std::vector<float> dy = testing::to_float(testing::random_vector(Ho * Wo, 6));
      dy[0] = -0.0f;
      dy.back() = std::numeric_limits<float>::quiet_NaN();
      std::vector<float> fast(H * W, -7.0f), want(H * W, 0.0f);
      for (int64_t p = 0; p < Ho * Wo; ++p) want[idx[p]] += dy[p];
      const bool took = plane_maxpool2x2_backward_avx512(fast.data(), dy.data(), idx.data(), H, W, Ho, Wo);
      EXPECT_EQ(took, cpu_has_avx512 && W <= 32) << W;
      if (!took) continue;
      EXPECT_EQ(0, std::memcmp(fast.data(), want.data(), fast.size() * sizeof(float))) << W << "x" << H;
    }
  }
}

TEST(MaxPoolKernel, BackwardMatchesFiniteDifferences) {
  for (const PoolGeometry g : {PoolGeometry{2, 6, 6, 2, 2, 0}, PoolGeometry{1, 5, 5, 3, 2, 1}}) {
    const int64_t N = 2, out = N * g.channels * g.out_height() * g.out_width();
    // Distinct values, so that a small step never changes which element is the maximum.
    std::vector<double> x = testing::random_vector(N * g.channels * g.height * g.width, 1);
    const auto r = testing::random_vector(out, 2);
    std::vector<int32_t> idx(out);
    auto loss = [&] {
      std::vector<double> y(out);
      maxpool2d_forward(y.data(), idx.data(), x.data(), g, N);
      return testing::dot(y, r);
    };
    loss();
    std::vector<double> dx(x.size());
    maxpool2d_backward(dx.data(), r.data(), idx.data(), g, N);
    testing::expect_gradient("dx", x, dx, loss);
  }
}

}  // namespace
}  // namespace bnlab::kernels
