// 16 x 16 tiles of floats transposed in registers (transpose.h): 16 rows loaded, three rounds of
// shuffles (pairs of floats, pairs of doubles, 128-bit blocks), 16 rows stored, where the
// element-by-element loop stored one float at a time, 16 to a cache line.
#include "kernels/transpose.h"

#if defined(__x86_64__)
#include "kernels/x86/avx512_rows.h"
#include "kernels/x86/multiversion.h"

BNLAB_AVX512_INTRINSICS_BEGIN

namespace bnlab::kernels {
namespace {

BNLAB_AVX512 void tile16(float* dst, int64_t ldd, const float* src, int64_t lds) {
  __m512 r[16], t[16], u[16];
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(src + i * lds);
  // Per 128-bit block b of rows 2k, 2k+1 (a, b below): [a0 b0 a1 b1] and [a2 b2 a3 b3].
#pragma GCC unroll 8
  for (int k = 0; k < 8; ++k) {
    t[2 * k] = _mm512_unpacklo_ps(r[2 * k], r[2 * k + 1]);
    t[2 * k + 1] = _mm512_unpackhi_ps(r[2 * k], r[2 * k + 1]);
  }
  // u[4k + j], block b: column 4b + j of rows 4k .. 4k+3.
#pragma GCC unroll 4
  for (int k = 0; k < 4; ++k) {
    const __m512d a0 = _mm512_castps_pd(t[4 * k]), a1 = _mm512_castps_pd(t[4 * k + 1]);
    const __m512d b0 = _mm512_castps_pd(t[4 * k + 2]), b1 = _mm512_castps_pd(t[4 * k + 3]);
    u[4 * k] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, b0));
    u[4 * k + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, b0));
    u[4 * k + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, b1));
    u[4 * k + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, b1));
  }
  // Column 4b + j: block b of u[j], u[4 + j], u[8 + j], u[12 + j].
#pragma GCC unroll 4
  for (int j = 0; j < 4; ++j) {
    const __m512 even01 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x88), odd01 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xdd);
    const __m512 even23 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x88);
    const __m512 odd23 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xdd);
    _mm512_storeu_ps(dst + j * ldd, _mm512_shuffle_f32x4(even01, even23, 0x88));
    _mm512_storeu_ps(dst + (4 + j) * ldd, _mm512_shuffle_f32x4(odd01, odd23, 0x88));
    _mm512_storeu_ps(dst + (8 + j) * ldd, _mm512_shuffle_f32x4(even01, even23, 0xdd));
    _mm512_storeu_ps(dst + (12 + j) * ldd, _mm512_shuffle_f32x4(odd01, odd23, 0xdd));
  }
}

}  // namespace

bool transpose_tiles16_avx512(float* dst, int64_t ldd, const float* src, int64_t lds, int64_t tiles) {
  if (!avx512_enabled()) return false;
  for (int64_t j = 0; j < tiles; ++j) tile16(dst + j * 16 * ldd, ldd, src + j * 16, lds);
  return true;
}

}  // namespace bnlab::kernels

BNLAB_AVX512_INTRINSICS_END

#else  // not x86-64

namespace bnlab::kernels {
bool transpose_tiles16_avx512(float*, int64_t, const float*, int64_t, int64_t) { return false; }
}  // namespace bnlab::kernels

#endif
