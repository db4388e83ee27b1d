// The four Winograd transforms over activations (winograd.h) for float with AVX-512, for planes
// of at most kAvx512MaxTilesW tiles a row (the seed network's conv2 has 12): a whole row of tiles
// in one vector. The portable loops (winograd/winograd_input.cpp, winograd_output.cpp) read or write each column at stride 2, and the
// compiler turns every such access into shuffles. Here each row the tiles touch is loaded once
// and split into the column vectors the tiles need (lane j for tile j), then the same operations
// in the same order as the portable loops: the same bits (conv_test.cpp checks).
//   input:        V = B^T d B, four input rows a row of tiles, columns 2j .. 2j+3
//   output grad:  dM = A dY A^T, two rows of dy a row of tiles, columns 2j, 2j+1
//   input grad:   dx = B dV B^T, four rows of dx a row of tiles, held as their even and odd
//                 columns: the tiles' sums added lane by lane in the portable loop's order
//                 (masked, as it adds nothing elsewhere), starting from zeros in registers, each
//                 row merged and stored once complete
//   output:       y = A^T M A (+ bias, BN's affine map, ReLU), the tiles' even and odd columns
//                 merged into two rows of y; not with the max-pool, whose loop is already long
// The kernels take the tiles by value: vector stores may alias a reference's fields, and the
// compiler reloaded tiles_h from memory after every row's stores.
// Each asks for the next channel's plane of the activation it reads or writes while it works on
// the current one (prefetch.h): with the input, output and output-gradient transforms, a training
// step 7.5-9% faster (AMD EPYC Zen 5); the input gradient's share of a step 2.9 -> 2.0-2.1%.
#include "kernels/winograd/winograd.h"

#include <algorithm>
#include <cstdint>

#if defined(__x86_64__)
#include "kernels/prefetch.h"
#include "kernels/x86/avx512_rows.h"

namespace bnlab::kernels {
namespace {

using namespace avx512;

// (B^T x)[K] over the four rows x0..x3, as bt_row in winograd/winograd_input.cpp.
template <int K>
BNLAB_AVX512 inline __m512 bt_row(__m512 x0, __m512 x1, __m512 x2, __m512 x3) {
  if constexpr (K == 0) return _mm512_sub_ps(x0, x2);
  if constexpr (K == 1) return _mm512_add_ps(x1, x2);
  if constexpr (K == 2) return _mm512_sub_ps(x2, x1);
  if constexpr (K == 3) return _mm512_sub_ps(x1, x3);
}

// Row K of the tiles' V: vertically over the rows, then horizontally z -> (z0 - z2, z1 + z2,
// z2 - z1, z1 - z3), into planes 4K .. 4K+3.
template <int K>
BNLAB_AVX512 inline void store_row(float* out, int64_t plane, __mmask16 tiles, const Columns* r) {
  const __m512 z0 = bt_row<K>(r[0].c0, r[1].c0, r[2].c0, r[3].c0);
  const __m512 z1 = bt_row<K>(r[0].c1, r[1].c1, r[2].c1, r[3].c1);
  const __m512 z2 = bt_row<K>(r[0].c2, r[1].c2, r[2].c2, r[3].c2);
  const __m512 z3 = bt_row<K>(r[0].c3, r[1].c3, r[2].c3, r[3].c3);
  float* o = out + 4 * K * plane;
  _mm512_mask_storeu_ps(o, tiles, _mm512_sub_ps(z0, z2));
  _mm512_mask_storeu_ps(o + plane, tiles, _mm512_add_ps(z1, z2));
  _mm512_mask_storeu_ps(o + 2 * plane, tiles, _mm512_sub_ps(z2, z1));
  _mm512_mask_storeu_ps(o + 3 * plane, tiles, _mm512_sub_ps(z1, z3));
}

// Row K of A applied to the two rows of a tile, as combine in output_grad_row (winograd/winograd_output.cpp).
template <int K>
BNLAB_AVX512 inline __m512 a_row(__m512 top, __m512 bottom) {
  if constexpr (K == 0) return top;
  if constexpr (K == 1) return _mm512_add_ps(top, bottom);
  if constexpr (K == 2) return _mm512_sub_ps(top, bottom);
  if constexpr (K == 3) return negate(bottom);
}

// Row K of a row of tiles' dM: along the columns (p, q) -> (p, p + q, p - q, -q), planes 4K ..
// 4K+3. top, bottom: dy's two rows, split (c0, c1: the tiles' columns 2j and 2j+1).
template <int K>
BNLAB_AVX512 inline void store_grad_row(float* out, int64_t plane, __mmask16 tiles, const Columns& top,
                                        const Columns& bottom) {
  const __m512 p = a_row<K>(top.c0, bottom.c0), q = a_row<K>(top.c1, bottom.c1);
  float* o = out + 4 * K * plane;
  _mm512_mask_storeu_ps(o, tiles, p);
  _mm512_mask_storeu_ps(o + plane, tiles, _mm512_add_ps(p, q));
  _mm512_mask_storeu_ps(o + 2 * plane, tiles, _mm512_sub_ps(p, q));
  _mm512_mask_storeu_ps(o + 3 * plane, tiles, negate(q));
}

BNLAB_AVX512 void output_grad_rows_avx512(float* dM, const float* dy, int64_t C, WinogradTiles t) {
  const int64_t tiles = t.count(), plane = winograd_plane_stride(C * tiles), W = t.out_width();
  const RowMasks m = row_masks(W, t.tiles_w);
  const int64_t plane_size = t.out_height() * W;
  const PlanePrefetch ahead(plane_size * static_cast<int64_t>(sizeof(float)), t.tiles_h);
  for (int64_t c = 0; c < C; ++c) {
    for (int64_t th = 0; th < t.tiles_h; ++th) {
      ahead.part_of_next(dy, c, C, th);
      const float* row0 = dy + (c * t.out_height() + 2 * th) * W;
      const Columns top = split_row(row0, W, m.low, m.high), bottom = split_row(row0 + W, W, m.low, m.high);
      float* out = dM + c * tiles + th * t.tiles_w;
      store_grad_row<0>(out, plane, m.tiles, top, bottom);
      store_grad_row<1>(out, plane, m.tiles, top, bottom);
      store_grad_row<2>(out, plane, m.tiles, top, bottom);
      store_grad_row<3>(out, plane, m.tiles, top, bottom);
    }
  }
}

// (B v)[K] over four values, as b_row in winograd/winograd_input.cpp (the same operations in the same order).
template <int K>
BNLAB_AVX512 inline __m512 b_row(__m512 v0, __m512 v1, __m512 v2, __m512 v3) {
  if constexpr (K == 0) return v0;
  if constexpr (K == 1) return _mm512_add_ps(_mm512_sub_ps(v1, v2), v3);
  if constexpr (K == 2) return _mm512_add_ps(_mm512_add_ps(negate(v0), v1), v2);
  if constexpr (K == 3) return negate(v3);
}

// A row of W floats from its even and odd columns (lane j: columns 2j and 2j+1).
BNLAB_AVX512 inline void store_merged(float* row, int64_t W, const RowMasks& m, __m512 even, __m512 odd) {
  const __m512i low = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i high = _mm512_add_epi32(low, _mm512_set1_epi32(8));
  _mm512_mask_storeu_ps(row, m.low, _mm512_permutex2var_ps(even, low, odd));
  if (W > 16) _mm512_mask_storeu_ps(row + 16, m.high, _mm512_permutex2var_ps(even, high, odd));
}

// A row of dx as its even and odd columns (lane j: columns 2j and 2j+1).
struct RowHalves {
  __m512 even, odd;
};

// Row r of a row of tiles' B dV B^T added to the dx row it covers, `old` its columns so far:
// column 2j gets b0 of tile j, then b2 of tile j-1; column 2j+1 gets b1 of tile j, then b3 of tile
// j-1 (the portable loop's two passes). u: the tiles' (B dV)[r] for the four plane columns l.
BNLAB_AVX512 inline RowHalves add_grad_row(RowHalves old, const RowMasks& m, __mmask16 later, const __m512* u) {
  const __m512 b0 = b_row<0>(u[0], u[1], u[2], u[3]), b1 = b_row<1>(u[0], u[1], u[2], u[3]);
  const __m512 b2 = b_row<2>(u[0], u[1], u[2], u[3]), b3 = b_row<3>(u[0], u[1], u[2], u[3]);
  const __m512i previous_tile = _mm512_setr_epi32(0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14);
  __m512 even = _mm512_mask_add_ps(old.even, m.tiles, old.even, b0);
  __m512 odd = _mm512_mask_add_ps(old.odd, m.tiles, old.odd, b1);
  even = _mm512_mask_add_ps(even, later, even, _mm512_maskz_permutexvar_ps(later, previous_tile, b2));
  odd = _mm512_mask_add_ps(odd, later, odd, _mm512_maskz_permutexvar_ps(later, previous_tile, b3));
  return {even, odd};
}

// Tile row th covers dx rows 2th .. 2th+3; its first two are the last two of tile row th-1. Those
// two stay in registers from one tile row to the next and are stored once complete: stored and
// loaded back, a masked store's data did not forward to the load, which waited for it (perf: over
// half of this kernel's samples in a training step). A row starts from zeros, 0 + b as the
// portable loop's fill-then-add: the same bits. H = 2 tiles_h + 2: every row gets written.
BNLAB_AVX512 void input_grad_rows_avx512(float* dx, const float* dV, int64_t C, WinogradTiles t) {
  const int64_t tiles = t.count(), plane = winograd_plane_stride(C * tiles), H = t.in_height(), W = t.in_width();
  const RowMasks m = row_masks(W, t.tiles_w);
  const __mmask16 later = static_cast<__mmask16>(m.tiles << 1);  // columns 2j+2, 2j+3 of tile j
  const __m512 zero = _mm512_setzero_ps();
  const PlanePrefetch ahead(H * W * static_cast<int64_t>(sizeof(float)), t.tiles_h);
  for (int64_t c = 0; c < C; ++c) {
    RowHalves carried[2] = {{zero, zero}, {zero, zero}};  // rows 2th, 2th+1 so far
    for (int64_t th = 0; th < t.tiles_h; ++th) {
      ahead.part_of_next(dx, c, C, th);
      const float* in = dV + c * tiles + th * t.tiles_w;
      __m512 u[4][4];  // u[r][l] = (B dV)[r] for plane column l, lane j for tile j
      for (int l = 0; l < 4; ++l) {
        const __m512 v0 = _mm512_maskz_loadu_ps(m.tiles, in + l * plane);
        const __m512 v1 = _mm512_maskz_loadu_ps(m.tiles, in + (4 + l) * plane);
        const __m512 v2 = _mm512_maskz_loadu_ps(m.tiles, in + (8 + l) * plane);
        const __m512 v3 = _mm512_maskz_loadu_ps(m.tiles, in + (12 + l) * plane);
        u[0][l] = b_row<0>(v0, v1, v2, v3);
        u[1][l] = b_row<1>(v0, v1, v2, v3);
        u[2][l] = b_row<2>(v0, v1, v2, v3);
        u[3][l] = b_row<3>(v0, v1, v2, v3);
      }
      float* rows = dx + (c * H + 2 * th) * W;
      for (int r = 0; r < 2; ++r) {
        const RowHalves done = add_grad_row(carried[r], m, later, u[r]);
        store_merged(rows + r * W, W, m, done.even, done.odd);
      }
      for (int r = 0; r < 2; ++r) carried[r] = add_grad_row({zero, zero}, m, later, u[2 + r]);
    }
    float* last = dx + (c * H + 2 * t.tiles_h) * W;
    for (int r = 0; r < 2; ++r) store_merged(last + r * W, W, m, carried[r].even, carried[r].odd);
  }
}

// One channel's ConvEpilogue with its scale and shift broadcast to vectors, applied as output_row in
// winograd/winograd_output.cpp does: the affine map as one fused multiply-add (as the portable loop
// compiles on any AVX-512 CPU), then the ReLU, passing NaN.
struct ChannelEpilogue {
  bool affine, relu;
  __m512 alpha, beta;
};
BNLAB_AVX512 inline __m512 finish(__m512 v, const ChannelEpilogue& e) {
  if (e.affine) v = _mm512_fmadd_ps(v, e.alpha, e.beta);
  if (e.relu) v = _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ), _mm512_setzero_ps());
  return v;
}

// Rows of tiles of y = A^T M A (+ bias) and the epilogue, as output_row in winograd/winograd_output.cpp.
BNLAB_AVX512 void output_rows_avx512(float* y, const float* M, const float* bias, int64_t C, WinogradTiles t,
                                     const ConvEpilogue<float>& epilogue) {
  const int64_t tiles = t.count(), p = winograd_plane_stride(C * tiles), W = t.out_width();
  const RowMasks m = row_masks(W, t.tiles_w);
  const int64_t plane_size = t.out_height() * W;
  const PlanePrefetch ahead(plane_size * static_cast<int64_t>(sizeof(float)), t.tiles_h);
  for (int64_t c = 0; c < C; ++c) {
    const __m512 b = _mm512_set1_ps(bias ? bias[c] : 0.0f);
    const bool affine = epilogue.scale != nullptr;
    const ChannelEpilogue e{affine, epilogue.relu, _mm512_set1_ps(affine ? epilogue.scale[c] : 1.0f),
                     _mm512_set1_ps(affine ? epilogue.shift[c] : 0.0f)};
    for (int64_t th = 0; th < t.tiles_h; ++th) {
      ahead.part_of_next(y, c, C, th);
      const float* in = M + c * tiles + th * t.tiles_w;
      __m512 a[4], d[4];  // per row k of the tile: m0 + m1 + m2 and m1 - m2 - m3, along the columns
      for (int k = 0; k < 4; ++k) {
        const __m512 m0 = _mm512_maskz_loadu_ps(m.tiles, in + 4 * k * p);
        const __m512 m1 = _mm512_maskz_loadu_ps(m.tiles, in + (4 * k + 1) * p);
        const __m512 m2 = _mm512_maskz_loadu_ps(m.tiles, in + (4 * k + 2) * p);
        const __m512 m3 = _mm512_maskz_loadu_ps(m.tiles, in + (4 * k + 3) * p);
        a[k] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
        d[k] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
      }
      const __m512 y00 = finish(_mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a[0], a[1]), a[2]), b), e);
      const __m512 y01 = finish(_mm512_add_ps(_mm512_add_ps(_mm512_add_ps(d[0], d[1]), d[2]), b), e);
      const __m512 y10 = finish(_mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(a[1], a[2]), a[3]), b), e);
      const __m512 y11 = finish(_mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(d[1], d[2]), d[3]), b), e);
      float* row0 = y + (c * t.out_height() + 2 * th) * W;
      store_merged(row0, W, m, y00, y01);
      store_merged(row0 + W, W, m, y10, y11);
    }
  }
}

BNLAB_AVX512 void input_rows_avx512(float* V, const float* x, int64_t C, WinogradTiles t) {
  const int64_t tiles = t.count(), plane = winograd_plane_stride(C * tiles), H = t.in_height(), W = t.in_width();
  const RowMasks m = row_masks(W, t.tiles_w);
  const PlanePrefetch ahead(H * W * static_cast<int64_t>(sizeof(float)), t.tiles_h);
  for (int64_t c = 0; c < C; ++c) {
    for (int64_t th = 0; th < t.tiles_h; ++th) {
      ahead.part_of_next(x, c, C, th);
      const float* rows = x + (c * H + 2 * th) * W;
      const Columns r[4] = {split_row(rows, W, m.low, m.high), split_row(rows + W, W, m.low, m.high),
                            split_row(rows + 2 * W, W, m.low, m.high), split_row(rows + 3 * W, W, m.low, m.high)};
      float* out = V + c * tiles + th * t.tiles_w;
      store_row<0>(out, plane, m.tiles, r);
      store_row<1>(out, plane, m.tiles, r);
      store_row<2>(out, plane, m.tiles, r);
      store_row<3>(out, plane, m.tiles, r);
    }
  }
}

}  // namespace

bool winograd_output_avx512(float* y, const float* M, const float* bias, int64_t C, const WinogradTiles& t,
                            const ConvEpilogue<float>& e) {
  if (!avx512_enabled() || t.tiles_w > kAvx512MaxTilesW || e.maxpool2x2) return false;
  output_rows_avx512(y, M, bias, C, t, e);
  return true;
}

bool winograd_input_grad_avx512(float* dx, const float* dV, int64_t C, const WinogradTiles& t) {
  if (!avx512_enabled() || t.tiles_w > kAvx512MaxTilesW) return false;
  input_grad_rows_avx512(dx, dV, C, t);
  return true;
}

bool winograd_output_grad_avx512(float* dM, const float* dy, int64_t C, const WinogradTiles& t) {
  if (!avx512_enabled() || t.tiles_w > kAvx512MaxTilesW) return false;
  output_grad_rows_avx512(dM, dy, C, t);
  return true;
}

bool winograd_input_avx512(float* V, const float* x, int64_t C, const WinogradTiles& t) {
  if (!avx512_enabled() || t.tiles_w > kAvx512MaxTilesW) return false;
  input_rows_avx512(V, x, C, t);
  return true;
}

}  // namespace bnlab::kernels

#else  // not x86-64: the portable loop only

namespace bnlab::kernels {
bool winograd_input_avx512(float*, const float*, int64_t, const WinogradTiles&) { return false; }
bool winograd_output_grad_avx512(float*, const float*, int64_t, const WinogradTiles&) { return false; }
bool winograd_input_grad_avx512(float*, const float*, int64_t, const WinogradTiles&) { return false; }
bool winograd_output_avx512(float*, const float*, const float*, int64_t, const WinogradTiles&,
                            const ConvEpilogue<float>&) {
  return false;
}
}  // namespace bnlab::kernels

#endif
