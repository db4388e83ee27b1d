// Batch norm's one-pass statistics rows (rows.h): sums of d = x - shift and of d^2, in double.
// A file of their own, compiled without floating-point contraction (unlike rows.cpp): each
// square rounds once and is then added, on every instruction set. Contraction would fuse the two
// in the AVX2/AVX-512 clones and not in the baseline one, and the clones would disagree in the
// last bit; std::fma would agree, but the baseline clone would call libm for every element.
// The flag is set in src/kernels/kernels.cmake; FpContract.ShiftedSumsRoundEachSquare
// (src/kernels/fp_contract_test.cpp) fails without it on a CPU with FMA.
#include <cstdint>

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
