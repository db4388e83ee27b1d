// Batch norm's one-pass statistics rows (rows.h): sums of d = x - shift and of d^2 in double, and
// the fast row, the sum of x in double and the squares in float. A file of their own, compiled
// without floating-point contraction (unlike rows.cpp): each square rounds once and is then added,
// on every instruction set. Contraction would fuse the two
// in the AVX2/AVX-512 clones and not in the baseline one, and the clones would disagree in the
// last bit; std::fma would agree, but the baseline clone would call libm for every element.
// The flag is set in src/kernels/kernels.cmake; FpContract.ShiftedSumsRoundEachSquare
// (src/kernels/fp_contract_test.cpp) fails without it on a CPU with FMA.
#include <algorithm>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "kernels/batchnorm/lanes.h"
#include "kernels/x86/multiversion.h"
#include "kernels/batchnorm/rows.h"

namespace bnlab::kernels {

BNLAB_INLINE void row_shifted_sums_body(const float* x, int64_t n, float shift, double* sum, double* squares) {
  const double k = shift;
  auto d = [&](int64_t i) { return static_cast<double>(x[i]) - k; };  // exact: two floats
  double s, q;
  lanes::lane_sum2<double>(n, d, [&](int64_t i) { return d(i) * d(i); }, &s, &q);
  *sum += s;
  *squares += q;
}
BNLAB_MULTIVERSION(void, row_shifted_sums, (const float* x, int64_t n, float shift, double* sum, double* squares),
                   (x, n, shift, sum, squares), row_shifted_sums_body)

// The fast statistics (rows.h, StatLanes). Per 32 floats: four widenings and four adds in double
// for the sums of x (in the AVX clones a multiply-add by 1, the same rounding, so that the adds
// run on the multiply units), then in float a subtract, a multiply and an add a lane for the
// squares; the
// float partials are widened into the double lanes every kFloatRun elements a lane and at the end
// of each row. Half the double-precision operations of row_shifted_sums: on a CPU that runs
// 512-bit double arithmetic at half rate (AMD Zen 4) those were the statistics' whole cost.
// Written out per instruction set (the compiler's vectorization of the lane loops spilled and
// shuffled), with the same operations on the same lanes in each: the same bits everywhere.
namespace {
constexpr int64_t kFloatRun = 16;  // float additions a lane before widening
constexpr int64_t kRun = kFloatRun * lanes::kLanes;
static_assert(lanes::kLanes == 32, "the loops below are written for 32 lanes");

// The last n < 32 floats of a row as a full step: a for the sums (padded with 0) and b for the
// squares (padded with the shift, whose deviation is 0).
struct Tail {
  float a[lanes::kLanes] = {}, b[lanes::kLanes];
  Tail(const float* x, int64_t n, float shift) {
    std::fill(b, b + lanes::kLanes, shift);
    std::copy(x, x + n, a);
    std::copy(x, x + n, b);
  }
};

// The loop of every version: step(a, b) per 32 floats of the row, widen() after every run of kRun
// floats. A macro, not a template taking lambdas: the steps must inline into functions compiled
// for AVX-512 or AVX2, and GCC inlines nothing of theirs into a function compiled for neither.
#define BNLAB_STAT_LANES_LOOP(x, n, shift, step, widen)               \
  for (int64_t i = 0; i < (n);) {                                      \
    const int64_t run_end = std::min<int64_t>((n), i + kRun);          \
    for (; i + lanes::kLanes <= run_end; i += lanes::kLanes) step((x) + i, (x) + i); \
    if (i < run_end) {                                                 \
      const Tail t((x) + i, run_end - i, (shift));                     \
      step(t.a, t.b);                                                  \
      i = run_end;                                                     \
    }                                                                  \
    widen();                                                           \
  }

void stat_lanes_baseline(const float* x, int64_t n, float shift, StatLanes* acc) {
  float part[lanes::kLanes] = {};
  auto step = [&](const float* a, const float* b) {
    for (int j = 0; j < lanes::kLanes; ++j) {
      acc->sum[j] += static_cast<double>(a[j]);
      const float d = b[j] - shift;
      part[j] += d * d;
    }
  };
  auto widen = [&] {
    for (int j = 0; j < lanes::kLanes; ++j) acc->squares[j] += static_cast<double>(part[j]), part[j] = 0.0f;
  };
  BNLAB_STAT_LANES_LOOP(x, n, shift, step, widen)
}

#if defined(__x86_64__)
BNLAB_AVX512_INTRINSICS_BEGIN
BNLAB_TARGET_AVX512 void stat_lanes_avx512(const float* x, int64_t n, float shift, StatLanes* acc) {
  __m512d s[4], q[4];
  for (int j = 0; j < 4; ++j) s[j] = _mm512_load_pd(acc->sum + 8 * j), q[j] = _mm512_load_pd(acc->squares + 8 * j);
  const __m512 k = _mm512_set1_ps(shift);
  const __m512d one = _mm512_set1_pd(1.0);
  __m512 p0 = _mm512_setzero_ps(), p1 = _mm512_setzero_ps();
#define step(a, b)                                                                                      \
  do {                                                                                                  \
    for (int j = 0; j < 4; ++j) s[j] = _mm512_fmadd_pd(_mm512_cvtps_pd(_mm256_loadu_ps((a) + 8 * j)), one, s[j]); \
    const __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(b), k), d1 = _mm512_sub_ps(_mm512_loadu_ps((b) + 16), k); \
    p0 = _mm512_add_ps(p0, _mm512_mul_ps(d0, d0));                                                      \
    p1 = _mm512_add_ps(p1, _mm512_mul_ps(d1, d1));                                                      \
  } while (0)
#define widen()                                                                                          \
  do {                                                                                                   \
    q[0] = _mm512_add_pd(q[0], _mm512_cvtps_pd(_mm512_castps512_ps256(p0)));                             \
    q[1] = _mm512_add_pd(q[1], _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(p0), 1)))); \
    q[2] = _mm512_add_pd(q[2], _mm512_cvtps_pd(_mm512_castps512_ps256(p1)));                             \
    q[3] = _mm512_add_pd(q[3], _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(p1), 1)))); \
    p0 = p1 = _mm512_setzero_ps();                                                                       \
  } while (0)
  BNLAB_STAT_LANES_LOOP(x, n, shift, step, widen)
#undef step
#undef widen
  for (int j = 0; j < 4; ++j) _mm512_store_pd(acc->sum + 8 * j, s[j]), _mm512_store_pd(acc->squares + 8 * j, q[j]);
}
BNLAB_AVX512_INTRINSICS_END

BNLAB_TARGET_AVX2 void stat_lanes_avx2(const float* x, int64_t n, float shift, StatLanes* acc) {
  __m256d s[8];
  for (int j = 0; j < 8; ++j) s[j] = _mm256_load_pd(acc->sum + 4 * j);
  const __m256 k = _mm256_set1_ps(shift);
  const __m256d one = _mm256_set1_pd(1.0);
  __m256 p[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
#define step(a, b)                                                                                     \
  do {                                                                                                 \
    for (int j = 0; j < 8; ++j) s[j] = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm_loadu_ps((a) + 4 * j)), one, s[j]);  \
    for (int j = 0; j < 4; ++j) {                                                                      \
      const __m256 d = _mm256_sub_ps(_mm256_loadu_ps((b) + 8 * j), k);                                 \
      p[j] = _mm256_add_ps(p[j], _mm256_mul_ps(d, d));                                                 \
    }                                                                                                  \
  } while (0)
#define widen()                                                                                                    \
  do {                                                                                                             \
    for (int j = 0; j < 4; ++j) {                                                                                  \
      double* q = acc->squares + 8 * j;                                                                            \
      _mm256_store_pd(q, _mm256_add_pd(_mm256_load_pd(q), _mm256_cvtps_pd(_mm256_castps256_ps128(p[j]))));         \
      _mm256_store_pd(q + 4, _mm256_add_pd(_mm256_load_pd(q + 4), _mm256_cvtps_pd(_mm256_extractf128_ps(p[j], 1)))); \
      p[j] = _mm256_setzero_ps();                                                                                  \
    }                                                                                                              \
  } while (0)
  BNLAB_STAT_LANES_LOOP(x, n, shift, step, widen)
#undef step
#undef widen
  for (int j = 0; j < 8; ++j) _mm256_store_pd(acc->sum + 4 * j, s[j]);
}
#endif
}  // namespace

void row_stat_lanes(const float* x, int64_t n, float shift, StatLanes* acc) {
#if defined(__x86_64__)
  switch (cpu_isa()) {
    case Isa::Avx512: return stat_lanes_avx512(x, n, shift, acc);
    case Isa::Avx2: return stat_lanes_avx2(x, n, shift, acc);
    default: break;
  }
#endif
  stat_lanes_baseline(x, n, shift, acc);
}

BNLAB_INLINE void row_shifted_sums_channels_body(const float* x, int64_t C, const float* shift, double* sum, double* squares) {
  for (int64_t c = 0; c < C; ++c) {  // row_shifted_sums over a row of one, per channel
    const double d = static_cast<double>(x[c]) - static_cast<double>(shift[c]);
    sum[c] += d;
    squares[c] += d * d;
  }
}
BNLAB_MULTIVERSION(void, row_shifted_sums_channels, (const float* x, int64_t C, const float* shift, double* sum, double* squares),
                   (x, C, shift, sum, squares), row_shifted_sums_channels_body)

}  // namespace bnlab::kernels
