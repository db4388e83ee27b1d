// Conv2d kernels in double: im2col+GEMM against a direct six-loop convolution, and backward
// against finite differences, with stride and padding.
#include "kernels/conv.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>

#include "bnlab/error.h"
#include "gradcheck.h"
#include "kernels/batchnorm/rows.h"
#include "kernels/winograd/winograd.h"
#include "kernels/x86/cpu_isa.h"

namespace bnlab::kernels {
namespace {

using testing::random_vector;

// The definition, written plainly: y[n,o,oh,ow] = b[o] + sum w[o,i,kh,kw] x[n,i,oh*s-p+kh,ow*s-p+kw]
std::vector<double> conv_reference(const std::vector<double>& x, const std::vector<double>& w,
                                   const std::vector<double>& b, const ConvGeometry& g, int64_t N) {
  const int64_t Ho = g.out_height(), Wo = g.out_width();
  std::vector<double> y(N * g.out_channels * Ho * Wo);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < g.out_channels; ++o)
      for (int64_t oh = 0; oh < Ho; ++oh)
        for (int64_t ow = 0; ow < Wo; ++ow) {
          double acc = b.empty() ? 0 : b[o];
          for (int64_t i = 0; i < g.in_channels; ++i)
            for (int64_t kh = 0; kh < g.kernel_h; ++kh)
              for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
                const int64_t ih = oh * g.stride - g.padding + kh, iw = ow * g.stride - g.padding + kw;
                if (ih < 0 || ih >= g.height || iw < 0 || iw >= g.width) continue;
                acc += w[((o * g.in_channels + i) * g.kernel_h + kh) * g.kernel_w + kw] *
                       x[((n * g.in_channels + i) * g.height + ih) * g.width + iw];
              }
          y[((n * g.out_channels + o) * Ho + oh) * Wo + ow] = acc;
        }
  return y;
}

struct ConvCase {
  ConvGeometry g;
  int64_t N;
  bool bias;
};

class ConvKernel : public ::testing::TestWithParam<ConvCase> {};

TEST_P(ConvKernel, ForwardMatchesDirectConvolution) {
  const auto [g, N, with_bias] = GetParam();
  const std::vector<double> x = random_vector(N * g.in_channels * g.height * g.width, 1);
  const std::vector<double> w = random_vector(g.weight_size(), 2);
  const std::vector<double> b = with_bias ? random_vector(g.out_channels, 3) : std::vector<double>{};
  std::vector<double> y(N * g.out_channels * g.out_height() * g.out_width());
  std::vector<double> col(conv_scratch_size(g, 2));
  conv2d_forward(y.data(), x.data(), w.data(), with_bias ? b.data() : nullptr, col.data(), g, N, 2);
  const std::vector<double> expected = conv_reference(x, w, b, g, N);
  for (size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(y[i], expected[i], 1e-12) << i;
}

TEST_P(ConvKernel, BackwardMatchesFiniteDifferences) {
  const auto [g, N, with_bias] = GetParam();
  std::vector<double> x = random_vector(N * g.in_channels * g.height * g.width, 4);
  std::vector<double> w = random_vector(g.weight_size(), 5);
  std::vector<double> b = random_vector(g.out_channels, 6);
  const std::vector<double> r = random_vector(N * g.out_channels * g.out_height() * g.out_width(), 7);
  auto loss = [&] { return testing::dot(conv_reference(x, w, with_bias ? b : std::vector<double>{}, g, N), r); };
  std::vector<double> dx(x.size()), dw(w.size(), 0.0), db(b.size(), 0.0);
  std::vector<double> col(conv_scratch_size(g, 2)), dw_scratch(conv_weight_scratch_size(g, 2));
  std::vector<double> bias_scratch(conv_bias_scratch_size(g, N));
  conv2d_backward(dx.data(), dw.data(), with_bias ? db.data() : nullptr, r.data(), x.data(), w.data(),
                  col.data(), dw_scratch.data(), bias_scratch.data(), g, N, 2);
  testing::expect_gradient("dx", x, dx, loss);
  testing::expect_gradient("dweight", w, dw, loss);
  if (with_bias) testing::expect_gradient("dbias", b, db, loss);
}

TEST(ConvKernel, WeightGradientAccumulates) {
  const ConvGeometry g{1, 4, 4, 1, 3, 3, 1, 0};
  const std::vector<double> x = random_vector(16, 8), w = random_vector(9, 9), dy = random_vector(4, 10);
  std::vector<double> dw(9, 1.0), col(conv_scratch_size(g, 1)), scratch(conv_weight_scratch_size(g, 1));
  std::vector<double> fresh(9, 0.0);
  conv2d_backward<double>(nullptr, fresh.data(), nullptr, dy.data(), x.data(), w.data(), col.data(), scratch.data(),
                          nullptr, g, 1, 1);
  conv2d_backward<double>(nullptr, dw.data(), nullptr, dy.data(), x.data(), w.data(), col.data(), scratch.data(),
                          nullptr, g, 1, 1);
  for (int i = 0; i < 9; ++i) EXPECT_NEAR(dw[i], 1.0 + fresh[i], 1e-12);
}

// The float bias gradient, summed by the threads as they read each sample's dy for the products,
// gives the bits of summing each channel's planes into one double one after the other, sample by
// sample (the sum before it had these bits), on the Winograd and the im2col paths, on 1 to 3
// threads; a second call adds as much again.
TEST(ConvKernel, FloatBiasGradientKeepsTheOrderOfItsSums) {
  for (const ConvGeometry g : {ConvGeometry{8, 10, 12, 6, 3, 3, 1, 0}, ConvGeometry{3, 9, 9, 5, 5, 5, 1, 2}}) {
    const int64_t N = 7, P = g.out_height() * g.out_width();
    std::vector<float> x(N * g.in_channels * g.height * g.width), w(g.weight_size()), dy(N * g.out_channels * P);
    const std::vector<double> rx = random_vector(x.size(), 11), rw = random_vector(w.size(), 12),
                              rdy = random_vector(dy.size(), 13);
    // The last sample's gradient cancels the one before, 10^11 times larger than the others':
    // summed in order, the small ones are rounded to the large ones' precision before the two
    // cancel; summed in any other order (backwards, or each thread's samples apart, the last two
    // in the last thread's share) the small ones would keep bits that the order drops.
    const int64_t per_sample = g.out_channels * P;
    for (int64_t i = 0; i < (N - 2) * per_sample; ++i) dy[i] = static_cast<float>(rdy[i] * 1e-3);
    for (int64_t i = 0; i < per_sample; ++i) {
      dy[(N - 2) * per_sample + i] = static_cast<float>(rdy[i] * 1e8);
      dy[(N - 1) * per_sample + i] = -dy[(N - 2) * per_sample + i];
    }
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(rx[i]);
    for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>(rw[i]);
    std::vector<float> expected(g.out_channels);
    for (int64_t o = 0; o < g.out_channels; ++o) {
      double acc = 0;
      for (int64_t n = 0; n < N; ++n) row_sum(dy.data() + (n * g.out_channels + o) * P, P, &acc);
      expected[o] = static_cast<float>(acc);
    }
    for (int threads = 1; threads <= 3; ++threads) {
      std::vector<float> dx(x.size()), dw(w.size(), 0.0f), db(g.out_channels, 0.0f);
      std::vector<float> col(conv_scratch_size(g, threads)), dw_scratch(conv_weight_scratch_size(g, threads));
      std::vector<double> bias_scratch(conv_bias_scratch_size(g, N));
      conv2d_backward(dx.data(), dw.data(), db.data(), dy.data(), x.data(), w.data(), col.data(), dw_scratch.data(),
                      bias_scratch.data(), g, N, threads);
      for (int64_t o = 0; o < g.out_channels; ++o) {
        ASSERT_EQ(db[o], expected[o]) << "channel " << o << ", " << threads << " threads";
      }
      conv2d_backward(dx.data(), dw.data(), db.data(), dy.data(), x.data(), w.data(), col.data(), dw_scratch.data(),
                      bias_scratch.data(), g, N, threads);
      for (int64_t o = 0; o < g.out_channels; ++o) EXPECT_EQ(db[o], 2 * expected[o]) << "channel " << o << ", again";
    }
  }
}

// The float backward of the Direct algorithm's layers (3x3 over 1 to 3 input channels: on AVX-512
// the weight gradient summed directly, by lanes) against the same backward in double, at output
// rows of 26 (conv1), 9 and 32 (both of a row's vectors full), with and without the input
// gradient, on 1 to 3 threads. Called twice on a scratch that starts as NaN: the second call
// must add as much again, so nothing of the first may carry over in the lanes.
TEST(ConvKernel, FloatDirectBackwardMatchesDouble) {
  for (const ConvGeometry g : {ConvGeometry{1, 28, 28, 32, 3, 3, 1, 0}, ConvGeometry{2, 13, 11, 5, 3, 3, 1, 0},
                               ConvGeometry{3, 6, 34, 4, 3, 3, 1, 0}}) {
    ASSERT_EQ(conv_algorithm(g), ConvAlgorithm::Direct);
    const int64_t N = 5;
    const std::vector<double> x = random_vector(N * g.in_channels * g.height * g.width, 21),
                              w = random_vector(g.weight_size(), 22),
                              dy = random_vector(N * g.out_channels * g.out_height() * g.out_width(), 23);
    std::vector<double> dx(x.size()), dw(w.size(), 0.5), db(g.out_channels, 0.0);
    std::vector<double> col(conv_scratch_size(g, 1)), dw_scratch(conv_weight_scratch_size(g, 1));
    std::vector<double> bias_scratch(conv_bias_scratch_size(g, N));
    conv2d_backward(dx.data(), dw.data(), db.data(), dy.data(), x.data(), w.data(), col.data(), dw_scratch.data(),
                    bias_scratch.data(), g, N, 1);
    auto to_float = [](const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); };
    const std::vector<float> xf = to_float(x), wf = to_float(w), dyf = to_float(dy);
    for (const bool with_dx : {true, false}) {
      for (int threads = 1; threads <= 3; ++threads) {
        std::vector<float> dxf(x.size()), dwf(w.size(), 0.5f), dbf(g.out_channels, 0.0f);
        std::vector<float> colf(conv_scratch_size(g, threads));
        std::vector<float> dw_scratchf(conv_weight_scratch_size(g, threads), std::numeric_limits<float>::quiet_NaN());
        const std::string where = std::to_string(g.in_channels) + " channels of width " + std::to_string(g.width) +
                                  ", " + std::to_string(threads) + " threads, by lanes: " +
                                  (avx512_enabled() ? "yes" : "no (no AVX-512)");
        for (int call = 1; call <= 2; ++call) {
          conv2d_backward(with_dx ? dxf.data() : nullptr, dwf.data(), dbf.data(), dyf.data(), xf.data(), wf.data(),
                          colf.data(), dw_scratchf.data(), bias_scratch.data(), g, N, threads);
          // Each weight's gradient sums N x Ho x Wo products of values in [-1, 1] (up to 5 x 26 x
          // 26): float rounding stays far below 1e-3 of it.
          for (size_t j = 0; j < dw.size(); ++j) {
            EXPECT_NEAR(dwf[j], 0.5 + call * (dw[j] - 0.5), 1e-3) << "dw " << j << ", call " << call << ", " << where;
          }
          for (size_t j = 0; j < db.size(); ++j) EXPECT_NEAR(dbf[j], call * db[j], 1e-3) << "db " << j << ", " << where;
          if (with_dx) {
            for (size_t j = 0; j < dx.size(); ++j) ASSERT_NEAR(dxf[j], dx[j], 1e-4) << "dx " << j << ", " << where;
          }
        }
      }
    }
  }
}

// The float Winograd transforms on AVX-512 (the seed network's conv2 runs them) against the
// portable loops: the same operations, so the same bits, at tile rows of 1 to the
// widest they take, and only the tiles' own lanes written (the rest keeps its sentinel). On a
// CPU without AVX-512 both sides are the portable loops.
TEST(WinogradTransforms, Avx512GivesThePortableBits) {
  const bool cpu_has_avx512 = avx512_enabled();
  for (const WinogradTiles t : {WinogradTiles{1, 1}, WinogradTiles{3, 5}, WinogradTiles{12, 12},
                                WinogradTiles{2, 7}, WinogradTiles{4, 15}, WinogradTiles{2, 16}}) {
    for (const int64_t C : {1, 3}) {
      const std::string where = std::to_string(t.tiles_h) + "x" + std::to_string(t.tiles_w) + " tiles, " +
                                std::to_string(C) + " channels";
      const bool fits = cpu_has_avx512 && t.tiles_w <= kAvx512MaxTilesW;
      const int64_t size = kWinogradPositions * winograd_plane_stride(C * t.count());
      const auto x = testing::to_float(random_vector(C * t.in_height() * t.in_width(), 31, 2.0, 0.5));
      std::vector<float> fast(size, -7.0f), portable(size, -7.0f), direct(size, -7.0f);
      winograd_input(fast.data(), x.data(), C, t);
      winograd_input_portable(portable.data(), x.data(), C, t);
      ASSERT_EQ(fast, portable) << "input, " << where;
      EXPECT_EQ(winograd_input_avx512(direct.data(), x.data(), C, t), fits) << where;
      if (fits) {
        EXPECT_EQ(direct, portable) << "input, " << where;
      }

      auto dy = testing::to_float(random_vector(C * t.out_height() * t.out_width(), 32));
      dy[1] = 0.0f;  // its negation must be -0, as the portable loop gives (not 0 - v = +0)
      std::fill(fast.begin(), fast.end(), -7.0f);
      std::fill(portable.begin(), portable.end(), -7.0f);
      std::fill(direct.begin(), direct.end(), -7.0f);
      winograd_output_grad(fast.data(), dy.data(), C, t);
      winograd_output_grad_portable(portable.data(), dy.data(), C, t);
      ASSERT_EQ(0, std::memcmp(fast.data(), portable.data(), size * sizeof(float))) << "output grad, " << where;
      EXPECT_EQ(winograd_output_grad_avx512(direct.data(), dy.data(), C, t), fits) << where;
      if (fits) {
        EXPECT_EQ(0, std::memcmp(direct.data(), portable.data(), size * sizeof(float))) << "output grad, " << where;
      }

      // The output, with each epilogue the convolution takes (BN's affine map, ReLU, the
      // max-pool, which stays with the portable loop); a NaN passes through the ReLU.
      std::vector<float> M = testing::to_float(random_vector(size, 34));
      M[0] = std::nanf("");
      const auto scale = testing::to_float(random_vector(C, 35, 0.5, 1.0));
      const auto shift = testing::to_float(random_vector(C, 36));
      const auto bias = testing::to_float(random_vector(C, 37));
      const int64_t y_size = C * t.out_height() * t.out_width();
      for (const bool affine : {false, true}) {
        for (const bool relu : {false, true}) {
          for (const bool pool : {false, true}) {
            const ConvEpilogue<float> e{affine ? scale.data() : nullptr, affine ? shift.data() : nullptr, relu, pool};
            std::vector<float> y_fast(y_size, -7.0f), y_portable(y_size, -7.0f), y_direct(y_size, -7.0f);
            winograd_output(y_fast.data(), M.data(), bias.data(), C, t, e);
            winograd_output_portable(y_portable.data(), M.data(), bias.data(), C, t, e);
            const std::string variant = where + (affine ? ", affine" : "") + (relu ? ", relu" : "") + (pool ? ", pool" : "");
            ASSERT_EQ(0, std::memcmp(y_fast.data(), y_portable.data(), y_size * sizeof(float))) << "output, " << variant;
            EXPECT_EQ(winograd_output_avx512(y_direct.data(), M.data(), bias.data(), C, t, e), fits && !pool) << variant;
            if (fits && !pool) {
              EXPECT_EQ(0, std::memcmp(y_direct.data(), y_portable.data(), y_size * sizeof(float))) << "output, " << variant;
            }
          }
        }
      }

      // The input gradient: overlapping tiles summed in the portable loop's order, every row
      // written over the sentinel. The last tile of channel 0 all zeros: its sums are -0 in
      // places, which the portable loop's fill-then-add turns into +0.
      std::vector<float> dV = testing::to_float(random_vector(size, 33));
      const int64_t plane_stride = winograd_plane_stride(C * t.count());
      for (int64_t xi = 0; xi < kWinogradPositions; ++xi) dV[xi * plane_stride + t.count() - 1] = 0.0f;
      const int64_t dx_size = C * t.in_height() * t.in_width();
      std::vector<float> dx_fast(dx_size, -7.0f), dx_portable(dx_size, -7.0f), dx_direct(dx_size, -7.0f);
      winograd_input_grad(dx_fast.data(), dV.data(), C, t);
      winograd_input_grad_portable(dx_portable.data(), dV.data(), C, t);
      ASSERT_EQ(0, std::memcmp(dx_fast.data(), dx_portable.data(), dx_size * sizeof(float))) << "input grad, " << where;
      EXPECT_EQ(winograd_input_grad_avx512(dx_direct.data(), dV.data(), C, t), fits) << where;
      if (fits) {
        EXPECT_EQ(0, std::memcmp(dx_direct.data(), dx_portable.data(), dx_size * sizeof(float)))
            << "input grad, " << where;
      }
    }
  }
}

const char* algorithm_name(ConvAlgorithm a) {
  switch (a) {
    case ConvAlgorithm::Winograd: return "winograd";
    case ConvAlgorithm::Direct: return "direct";
    case ConvAlgorithm::Im2col: return "im2col";
  }
  return "?";
}

// The geometries below must reach every algorithm, and the seed network's two layers the ones
// they are meant to run.
TEST(ConvKernel, AlgorithmFollowsTheGeometry) {
  EXPECT_EQ(conv_algorithm({4, 6, 8, 5, 3, 3, 1, 0}), ConvAlgorithm::Winograd);
  EXPECT_EQ(conv_algorithm({32, 26, 26, 64, 3, 3, 1, 0}), ConvAlgorithm::Winograd);  // conv2
  EXPECT_EQ(conv_algorithm({1, 28, 28, 32, 3, 3, 1, 0}), ConvAlgorithm::Direct);     // conv1
  EXPECT_EQ(conv_algorithm({2, 9, 9, 3, 5, 5, 1, 2}), ConvAlgorithm::Im2col);
  EXPECT_EQ(conv_algorithm({32, 26, 26, 64, 3, 3, 2, 0}), ConvAlgorithm::Im2col);    // strided
  EXPECT_EQ(conv_algorithm({32, 26, 26, 64, 5, 5, 1, 0}), ConvAlgorithm::Im2col);
}

// A bias gradient without the scratch its plane sums go to is refused, named, on every algorithm's
// path, before anything is written.
TEST(ConvKernel, BiasGradientWithoutItsScratchIsRefused) {
  for (const ConvGeometry g : {ConvGeometry{4, 6, 8, 5, 3, 3, 1, 0}, ConvGeometry{1, 8, 8, 4, 3, 3, 1, 0},
                               ConvGeometry{3, 9, 9, 5, 5, 5, 1, 2}}) {
    const int64_t N = 2;
    std::vector<float> x(N * g.in_channels * g.height * g.width, 1.0f), w(g.weight_size(), 1.0f),
        dy(N * g.out_channels * g.out_height() * g.out_width(), 1.0f), dx(x.size()), dw(w.size(), 0.0f),
        db(g.out_channels, 0.0f), col(conv_scratch_size(g, 1)), dw_scratch(conv_weight_scratch_size(g, 1));
    std::fill(dx.begin(), dx.end(), -7.0f);
    try {
      conv2d_backward(dx.data(), dw.data(), db.data(), dy.data(), x.data(), w.data(), col.data(), dw_scratch.data(),
                      static_cast<double*>(nullptr), g, N, 1);
      ADD_FAILURE() << "no error for " << algorithm_name(conv_algorithm(g));
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("bias_scratch"), std::string::npos) << e.what();
    }
    EXPECT_EQ(dw, std::vector<float>(w.size(), 0.0f));
    EXPECT_EQ(db, std::vector<float>(db.size(), 0.0f));
    EXPECT_EQ(dx, std::vector<float>(dx.size(), -7.0f));
  }
}

INSTANTIATE_TEST_SUITE_P(Geometries, ConvKernel,
                         ::testing::Values(ConvCase{{2, 5, 6, 3, 3, 3, 1, 0}, 2, true},
                                           // Winograd: exact tiles; odd output sizes; padding
                                           ConvCase{{4, 6, 8, 5, 3, 3, 1, 0}, 3, true},
                                           ConvCase{{5, 7, 6, 3, 3, 3, 1, 0}, 2, false},
                                           ConvCase{{4, 5, 5, 6, 3, 3, 1, 1}, 2, true},
                                           // im2col at stride 1: too many taps for the direct loop
                                           ConvCase{{2, 9, 9, 3, 5, 5, 1, 2}, 2, true},
                                           ConvCase{{3, 7, 7, 4, 3, 3, 2, 1}, 3, true},
                                           ConvCase{{1, 6, 5, 2, 2, 2, 1, 1}, 2, false},
                                           ConvCase{{2, 4, 4, 2, 1, 1, 1, 0}, 1, true}),
                         [](const auto& info) {
                           const ConvCase& c = info.param;
                           char name[96];
                           std::snprintf(name, sizeof name, "Ci%ld_%ldx%ld_K%ldS%ldP%ld%s_%s",
                                         static_cast<long>(c.g.in_channels), static_cast<long>(c.g.height),
                                         static_cast<long>(c.g.width), static_cast<long>(c.g.kernel_h),
                                         static_cast<long>(c.g.stride), static_cast<long>(c.g.padding),
                                         c.bias ? "bias" : "nobias",
                                         algorithm_name(conv_algorithm(c.g)));
                           return std::string(name);
                         });

}  // namespace
}  // namespace bnlab::kernels
