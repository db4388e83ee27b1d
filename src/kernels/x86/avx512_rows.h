// Pieces the AVX-512 kernels share (winograd_avx512.cpp, pool_avx512.cpp, conv_weight_grad_avx512.cpp;
// gemm_nt_avx512.cpp uses only the target macro): rows of at most 32
// floats held in two vectors, the lanes past a row's width masked off, and split into the
// columns that 2x2 windows or tiles read (lane j: columns 2j, 2j+1, 2j+2, 2j+3). x86-64 only;
// functions compiled for AVX-512 whatever the build's baseline, to be called after
// avx512_enabled() (cpu_isa.h: the CPU has AVX-512F and BNLAB_MAX_CPU_ISA allows it).
#pragma once

#include <immintrin.h>

#include <climits>
#include <cstdint>

#include "kernels/x86/cpu_isa.h"

#define BNLAB_AVX512 __attribute__((target("avx512f")))

namespace bnlab::kernels::avx512 {

// Columns of a row of at most 32 floats, lane j holding columns 2j .. 2j+3.
struct Columns {
  __m512 c0, c1, c2, c3;  // x[2j], x[2j+1], x[2j+2], x[2j+3]
};

BNLAB_AVX512 inline Columns split_row(const float* row, int64_t W, __mmask16 low_mask, __mmask16 high_mask) {
  // Lanes past the row's width load as zero (masked: nothing past the plane is touched).
  const __m512 lo = _mm512_maskz_loadu_ps(low_mask, row);
  const __m512 hi = W > 16 ? _mm512_maskz_loadu_ps(high_mask, row + 16) : _mm512_setzero_ps();
  // Indices into the 32 floats lo:hi (16 + i picks hi[i]); 2j + 3 <= 31 for j <= 14.
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i two = _mm512_set1_epi32(2), one = _mm512_set1_epi32(1);
  const __m512i odd = _mm512_add_epi32(even, one), even2 = _mm512_add_epi32(even, two);
  const __m512i odd2 = _mm512_add_epi32(odd, two);
  return {_mm512_permutex2var_ps(lo, even, hi), _mm512_permutex2var_ps(lo, odd, hi),
          _mm512_permutex2var_ps(lo, even2, hi), _mm512_permutex2var_ps(lo, odd2, hi)};
}

// The loads of a row of W floats (two vectors, the lanes past W masked off) and the stores of a
// row of tiles or windows, one a lane.
struct LaneMasks {
  __mmask16 low, high;  // the lanes of the row in its first and its second vector
};
inline LaneMasks lane_masks(int64_t W) {
  return {static_cast<__mmask16>(W >= 16 ? 0xffff : (1u << W) - 1),
          static_cast<__mmask16>(W <= 16 ? 0 : (1u << (W - 16)) - 1)};
}
struct RowMasks {
  __mmask16 low, high, tiles;
};
inline RowMasks row_masks(int64_t W, int64_t tiles_w) {
  const LaneMasks lanes = lane_masks(W);
  return {lanes.low, lanes.high, static_cast<__mmask16>((1u << tiles_w) - 1)};
}

// -v as the compiler writes it: the sign bit flipped (0 - v would turn -0 into +0).
BNLAB_AVX512 inline __m512 negate(__m512 v) {
  return _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(v), _mm512_set1_epi32(INT32_MIN)));
}

}  // namespace bnlab::kernels::avx512
