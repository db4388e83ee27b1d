// C += A B^T for float with AVX-512, where A (M, K) and B (N, K) both run along K: the product
// Winograd's filter gradient takes each tile position (dU += dM V^T, K the tiles of a sample).
// oneDNN's sgemm runs that shape (64 x 32, K = 144 for the seed network's conv2) at 60-65% of a
// core's peak, against 88-97% for the other two Winograd products (kernels_bench BM_Gemm, Zen 5),
// as its packing wants one operand along N. Here each element of C is a dot product along K, with
// no packing: blocks of 4 rows of A by 4 rows of B keep 16 accumulators of 16 lanes (8 loads to
// 16 multiply-adds a step of 16 along K), and at the end of K a tree of shuffles and adds turns
// the 16 vectors into one vector of their 16 sums, added into C's 4 x 4 block.
//
// The order of the additions is fixed (lane by lane along K, then the tree), so the result is the
// same from run to run and thread count to thread count; it is not oneDNN's order, so the bits
// differ from the BLAS path's. gemm_nt_avx512_test.cpp checks it against a product in double.
#include "kernels/gemm.h"

#include <cstdint>

#if defined(__x86_64__)
#include "kernels/x86/avx512_rows.h"
#include "kernels/x86/multiversion.h"

BNLAB_AVX512_INTRINSICS_BEGIN

namespace bnlab::kernels {
namespace {

// The lanes of K's last, partial step of 16 (all of them when K is a multiple of 16).
inline __mmask16 tail_mask(int64_t K) {
  const int64_t r = K % 16;
  return static_cast<__mmask16>(r == 0 ? 0xffff : (1u << r) - 1);
}

// v[4i + j] -> one vector whose lane 4i + j is the sum of v[4i + j]'s 16 lanes.
BNLAB_AVX512 BNLAB_INLINE __m512 sum_lanes16(const __m512* v) {
  __m512 w[8], x[4];
#pragma GCC unroll 8
  for (int k = 0; k < 8; ++k)  // per 128-bit block: [a0+a2, b0+b2, a1+a3, b1+b3] of v[2k], v[2k+1]
    w[k] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * k], v[2 * k + 1]), _mm512_unpackhi_ps(v[2 * k], v[2 * k + 1]));
#pragma GCC unroll 4
  for (int k = 0; k < 4; ++k) {  // per 128-bit block: the partial sums of v[4k] .. v[4k+3]
    const __m512d a = _mm512_castps_pd(w[2 * k]), b = _mm512_castps_pd(w[2 * k + 1]);
    x[k] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)), _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
  }
  // Blocks of x[k] summed: [x0 b0+b1, x0 b2+b3, x1 b0+b1, x1 b2+b3], then across.
  const __m512 y01 = _mm512_add_ps(_mm512_shuffle_f32x4(x[0], x[1], 0x88), _mm512_shuffle_f32x4(x[0], x[1], 0xdd));
  const __m512 y23 = _mm512_add_ps(_mm512_shuffle_f32x4(x[2], x[3], 0x88), _mm512_shuffle_f32x4(x[2], x[3], 0xdd));
  return _mm512_add_ps(_mm512_shuffle_f32x4(y01, y23, 0x88), _mm512_shuffle_f32x4(y01, y23, 0xdd));
}

// One step of 16 along K for a 4 x 4 block (m: the lanes of K it covers).
BNLAB_AVX512 BNLAB_INLINE void step4x4(__m512* acc, const float* A, int64_t lda, const float* B, int64_t ldb, __mmask16 m) {
  __m512 a[4], b[4];
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) a[i] = _mm512_maskz_loadu_ps(m, A + i * lda);
#pragma GCC unroll 4
  for (int j = 0; j < 4; ++j) b[j] = _mm512_maskz_loadu_ps(m, B + j * ldb);
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) acc[4 * i + j] = _mm512_fmadd_ps(a[i], b[j], acc[4 * i + j]);
}

// C[0..3][0..3] += A rows 0..3 . B rows 0..3.
BNLAB_AVX512 void block4x4(int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc) {
  __m512 acc[16];
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i) acc[i] = _mm512_setzero_ps();
  const int64_t full = K / 16 * 16;
  for (int64_t k = 0; k < full; k += 16) step4x4(acc, A + k, lda, B + k, ldb, 0xffff);
  if (full < K) step4x4(acc, A + full, lda, B + full, ldb, tail_mask(K));
  const __m512 sums = sum_lanes16(acc);
  for (int i = 0; i < 4; ++i) {
    float* c = C + i * ldc;
    const __m128 s = i == 0 ? _mm512_castps512_ps128(sums)
                     : i == 1 ? _mm512_extractf32x4_ps(sums, 1)
                     : i == 2 ? _mm512_extractf32x4_ps(sums, 2)
                              : _mm512_extractf32x4_ps(sums, 3);
    _mm_storeu_ps(c, _mm_add_ps(_mm_loadu_ps(c), s));
  }
}

// One element of C, for the rows and columns past the 4 x 4 blocks.
BNLAB_AVX512 void dot1(int64_t K, const float* a, const float* b, float* c) {
  __m512 acc = _mm512_setzero_ps();
  const int64_t full = K / 16 * 16;
  for (int64_t k = 0; k < full; k += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(a + k), _mm512_loadu_ps(b + k), acc);
  if (full < K) {
    const __mmask16 m = tail_mask(K);
    acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + full), _mm512_maskz_loadu_ps(m, b + full), acc);
  }
  *c += _mm512_reduce_add_ps(acc);
}

BNLAB_AVX512 void gemm_nt_accumulate(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
                                     int64_t ldb, float* C, int64_t ldc) {
  const int64_t M4 = M / 4 * 4, N4 = N / 4 * 4;
  for (int64_t i = 0; i < M4; i += 4) {
    for (int64_t j = 0; j < N4; j += 4) block4x4(K, A + i * lda, lda, B + j * ldb, ldb, C + i * ldc + j, ldc);
    for (int64_t j = N4; j < N; ++j)
      for (int64_t r = 0; r < 4; ++r) dot1(K, A + (i + r) * lda, B + j * ldb, C + (i + r) * ldc + j);
  }
  for (int64_t i = M4; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) dot1(K, A + i * lda, B + j * ldb, C + i * ldc + j);
}

}  // namespace

bool gemm_nt_accumulate_avx512(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
                               int64_t ldb, float* C, int64_t ldc) {
  if (!avx512_enabled()) return false;
  gemm_nt_accumulate(M, N, K, A, lda, B, ldb, C, ldc);
  return true;
}

}  // namespace bnlab::kernels

BNLAB_AVX512_INTRINSICS_END

#else  // not x86-64

namespace bnlab::kernels {
bool gemm_nt_accumulate_avx512(int64_t, int64_t, int64_t, const float*, int64_t, const float*, int64_t, float*,
                               int64_t) {
  return false;
}
}  // namespace bnlab::kernels

#endif
