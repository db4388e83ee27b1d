// The 2x2, stride-2 max-pool of one plane (vector_rows.h: plane_maxpool2x2) and its backward on AVX-512, for rows
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

// Where next takes best's place, as scan_takes in vector_rows.h: best is a number and next is
// larger or NaN. One compare does the second part (not less or equal, or unordered: with best a
// number, unordered means next is NaN) under the mask of the first, instead of three compares
// and two mask operations, which AMD's Zen cores run one a cycle: they were the kernel's bottleneck.
BNLAB_AVX512 inline __mmask16 scan_takes(__m512 best, __m512 next) {
  const __mmask16 best_is_number = _mm512_cmp_ps_mask(best, best, _CMP_ORD_Q);
  return _mm512_mask_cmp_ps_mask(best_is_number, next, best, _CMP_NLE_UQ);
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

// The window's gradient where its maximum sits (at == where), else 0; 0 + g as the portable
// backward's fill-then-add, so that -0 turns into +0 there as well.
BNLAB_AVX512 inline __m512 placed(__m512 g, __m512i at, __m512i where) {
  return _mm512_add_ps(_mm512_setzero_ps(), _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(at, where), g));
}

BNLAB_AVX512 void plane_backward_avx512(float* dx, const float* dy, const int32_t* idx, int64_t H, int64_t W,
                                        int64_t Ho, int64_t Wo) {
  const RowMasks m = row_masks(W, Wo);
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i column = _mm512_add_epi32(lane, lane);  // 2j: the window's first column
  // Lanes of a row of 2 Wo values from its even (left) and odd (right) columns: the first 16, the rest.
  const __m512i first = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i rest = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  const __m512i left = _mm512_setzero_si512(), right = _mm512_set1_epi32(1);
  const __m512i below = _mm512_set1_epi32(static_cast<int32_t>(W));
  const __m512i below_right = _mm512_set1_epi32(static_cast<int32_t>(W + 1));
  for (int64_t i = 0; i < Ho; ++i) {
    // Lanes past Wo load as 0 and so write 0: the unused last column of an odd width.
    const __m512 g = _mm512_maskz_loadu_ps(m.tiles, dy + i * Wo);
    const __m512i base = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int32_t>(2 * i * W)), column);
    const __m512i at = _mm512_sub_epi32(_mm512_maskz_loadu_epi32(m.tiles, idx + i * Wo), base);
    float* top = dx + 2 * i * W;
    float* bottom = top + W;
    const __m512 top_left = placed(g, at, left), top_right = placed(g, at, right);
    const __m512 bottom_left = placed(g, at, below), bottom_right = placed(g, at, below_right);
    _mm512_mask_storeu_ps(top, m.low, _mm512_permutex2var_ps(top_left, first, top_right));
    _mm512_mask_storeu_ps(bottom, m.low, _mm512_permutex2var_ps(bottom_left, first, bottom_right));
    if (W > 16) {
      _mm512_mask_storeu_ps(top + 16, m.high, _mm512_permutex2var_ps(top_left, rest, top_right));
      _mm512_mask_storeu_ps(bottom + 16, m.high, _mm512_permutex2var_ps(bottom_left, rest, bottom_right));
    }
  }
  for (float* row = dx + 2 * Ho * W; row < dx + H * W; ++row) *row = 0.0f;  // an odd height's last row
}

}  // namespace

bool plane_maxpool2x2_backward_avx512(float* dx, const float* dy, const int32_t* idx, int64_t H, int64_t W,
                                      int64_t Ho, int64_t Wo) {
  if (!avx512_enabled() || W > 32) return false;
  plane_backward_avx512(dx, dy, idx, H, W, Ho, Wo);
  return true;
}

bool plane_maxpool2x2_avx512(float* y, int32_t* idx, const float* x, int64_t W, int64_t Ho, int64_t Wo) {
  if (!avx512_enabled() || W > 32) return false;
  plane_avx512(y, idx, x, W, Ho, Wo);
  return true;
}

}  // namespace bnlab::kernels

#else  // not x86-64: the portable loop only

namespace bnlab::kernels {
bool plane_maxpool2x2_avx512(float*, int32_t*, const float*, int64_t, int64_t, int64_t) { return false; }
bool plane_maxpool2x2_backward_avx512(float*, const float*, const int32_t*, int64_t, int64_t, int64_t, int64_t) {
  return false;
}
}  // namespace bnlab::kernels

#endif
