// gemm_nt_accumulate_avx512 (gemm_nt_avx512.cpp) against a product in double: every block shape
// it has (4 x 4 blocks, the rows and columns past them, K a multiple of 16 or with a partial last
// step), leading dimensions wider than K and N, and C accumulated into, not overwritten. Also that
// it declines on a CPU without AVX-512 (or under BNLAB_MAX_CPU_ISA, as the avx2 and baseline
// runs of kernels_test do), and that it gives the same bits twice. Without AVX-512 only the
// decline is checked, and the test says it skipped the rest.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "gradcheck.h"
#include "kernels/gemm.h"
#include "kernels/x86/cpu_isa.h"

namespace bnlab::kernels {
namespace {

struct Shape {
  int64_t M, N, K;
};

TEST(GemmNt, AccumulatesTheProductOfRowsAlongK) {
  // 4 x 4 blocks only (K a multiple of 16, or not); leftover rows and columns with and without a
  // partial last step of K; K shorter than one step.
  for (const Shape s : {Shape{64, 32, 144}, Shape{4, 4, 16}, Shape{7, 6, 21}, Shape{5, 5, 16}, Shape{3, 2, 5},
                        Shape{9, 13, 33}, Shape{8, 4, 1}}) {
    const std::string where = std::to_string(s.M) + "x" + std::to_string(s.N) + "x" + std::to_string(s.K);
    const int64_t lda = s.K + 3, ldb = s.K + 5, ldc = s.N + 2;  // padded rows: only K (N) of them read
    const std::vector<float> A = testing::to_float(testing::random_vector(s.M * lda, 11));
    const std::vector<float> B = testing::to_float(testing::random_vector(s.N * ldb, 12));
    const std::vector<float> C0 = testing::to_float(testing::random_vector(s.M * ldc, 13));
    std::vector<float> C = C0;
    const bool ran = gemm_nt_accumulate_avx512(s.M, s.N, s.K, A.data(), lda, B.data(), ldb, C.data(), ldc);
    ASSERT_EQ(ran, avx512_enabled()) << where;
    if (!ran) {
      EXPECT_EQ(C, C0) << where << ": declined, yet wrote";
      continue;
    }
    for (int64_t i = 0; i < s.M; ++i) {
      for (int64_t j = 0; j < ldc; ++j) {
        const int64_t at = i * ldc + j;
        if (j >= s.N) {
          ASSERT_EQ(C[at], C0[at]) << where << ": wrote past N at " << i << "," << j;
          continue;
        }
        double expected = C0[at], magnitude = std::fabs(C0[at]);
        for (int64_t k = 0; k < s.K; ++k) {
          const double p = static_cast<double>(A[i * lda + k]) * B[j * ldb + k];
          expected += p;
          magnitude += std::fabs(p);
        }
        // A float dot product: each step rounds once, relative to the terms' magnitude.
        ASSERT_NEAR(C[at], expected, 4e-7 * (s.K + 2) * magnitude) << where << " at " << i << "," << j;
      }
    }
    std::vector<float> again = C0;
    gemm_nt_accumulate_avx512(s.M, s.N, s.K, A.data(), lda, B.data(), ldb, again.data(), ldc);
    EXPECT_EQ(again, C) << where << ": not the same bits twice";
  }
  if (!avx512_enabled()) GTEST_SKIP() << "no AVX-512 here (or BNLAB_MAX_CPU_ISA): only the decline was checked";
}

}  // namespace
}  // namespace bnlab::kernels
