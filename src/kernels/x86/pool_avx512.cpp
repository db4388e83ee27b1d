// The 2x2, stride-2 max-pool of one plane (vector_rows.h: plane_maxpool2x2) on AVX-512, for rows
// of at most 32 values (the seed network pools 24x24 planes): a row of windows in one vector.
// The portable loop reads its four values per window at stride 2, rows of 12 windows; here each
// pair of input rows is loaded once and split into even and odd columns. The same scan in the
// same order, PyTorch's (a later value wins only if strictly larger or NaN, nothing beats a NaN):
// the same values and indices (pool_test.cpp checks).
#include "kernels/vector_rows.h"

#if defined(__x86_64__)
#include "kernels/x86/avx512_rows.h"

namespace bnlab::kernels {
namespace {
using namespace avx512;

// Where next takes best's place, as scan_takes in vector_rows.h.
BNLAB_AVX512 inline __mmask16 scan_takes(__m512 best, __m512 next) {
  const __mmask16 best_is_nan = _mm512_cmp_ps_mask(best, best, _CMP_UNORD_Q);
  const __mmask16 larger = _mm512_cmp_ps_mask(next, best, _CMP_GT_OQ);
  const __mmask16 next_is_nan = _mm512_cmp_ps_mask(next, next, _CMP_UNORD_Q);
  return static_cast<__mmask16>(~best_is_nan & (larger | next_is_nan));
}

BNLAB_AVX512 void plane_avx512(float* y, int32_t* idx, const float* x, int64_t W, int64_t Ho, int64_t Wo) {
  const RowMasks m = row_masks(W, Wo);
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i column = _mm512_add_epi32(lane, lane);  // 2j: the window's first column
  const __m512i right = _mm512_set1_epi32(1), below = _mm512_set1_epi32(static_cast<int32_t>(W));
  const __m512i below_right = _mm512_set1_epi32(static_cast<int32_t>(W + 1));
  for (int64_t i = 0; i < Ho; ++i) {
    const float* r0 = x + 2 * i * W;
    const Columns top = split_row(r0, W, m.low, m.high), bottom = split_row(r0 + W, W, m.low, m.high);
    __m512 best = top.c0;
    __m512i at = _mm512_setzero_si512();
    __mmask16 take = scan_takes(best, top.c1);
    best = _mm512_mask_mov_ps(best, take, top.c1);
    at = _mm512_mask_mov_epi32(at, take, right);
    take = scan_takes(best, bottom.c0);
    best = _mm512_mask_mov_ps(best, take, bottom.c0);
    at = _mm512_mask_mov_epi32(at, take, below);
    take = scan_takes(best, bottom.c1);
    best = _mm512_mask_mov_ps(best, take, bottom.c1);
    at = _mm512_mask_mov_epi32(at, take, below_right);
    _mm512_mask_storeu_ps(y + i * Wo, m.tiles, best);
    if (idx) {
      const __m512i base = _mm512_set1_epi32(static_cast<int32_t>(2 * i * W));
      const __m512i where = _mm512_add_epi32(_mm512_add_epi32(base, column), at);
      _mm512_mask_storeu_epi32(idx + i * Wo, m.tiles, where);
    }
  }
}

}  // namespace

bool plane_maxpool2x2_avx512(float* y, int32_t* idx, const float* x, int64_t W, int64_t Ho, int64_t Wo) {
  if (!avx512_enabled() || W > 32) return false;
  plane_avx512(y, idx, x, W, Ho, Wo);
  return true;
}

}  // namespace bnlab::kernels

#else  // not x86-64: the portable loop only

namespace bnlab::kernels {
bool plane_maxpool2x2_avx512(float*, int32_t*, const float*, int64_t, int64_t, int64_t) { return false; }
}  // namespace bnlab::kernels

#endif
