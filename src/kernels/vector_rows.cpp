#include "kernels/vector_rows.h"

#include "kernels/x86/multiversion.h"

namespace bnlab::kernels {

BNLAB_INLINE void row_axpy_body(float* __restrict wide, const float* __restrict x, int64_t n, float a) {
  row_axpy<float>(wide, x, n, a);
}
BNLAB_MULTIVERSION(void, row_axpy, (float* __restrict wide, const float* __restrict x, int64_t n, float a),
                   (wide, x, n, a), row_axpy_body)

BNLAB_INLINE void row_taps3x3_body(float* __restrict wide, const float* __restrict x, int64_t n, int64_t W, const float* w) {
  row_taps3x3<float>(wide, x, n, W, w);
}
BNLAB_MULTIVERSION(void, row_taps3x3, (float* __restrict wide, const float* __restrict x, int64_t n, int64_t W, const float* w),
                   (wide, x, n, W, w), row_taps3x3_body)

BNLAB_INLINE void direct_conv_body(float* y, float* wide, const float* x, const float* w, const float* bias,
                 const ConvGeometry& g) {
  direct_conv_impl(y, wide, x, w, bias, g);
}
BNLAB_MULTIVERSION(void, direct_conv, (float* y, float* wide, const float* x, const float* w, const float* bias, const ConvGeometry& g),
                   (y, wide, x, w, bias, g), direct_conv_body)

BNLAB_INLINE void plane_maxpool2x2_body(float* y, int32_t* idx, const float* x, int64_t W, int64_t Ho, int64_t Wo) {
  plane_maxpool2x2_impl(y, idx, x, W, Ho, Wo);
}
BNLAB_MULTIVERSION(void, plane_maxpool2x2, (float* y, int32_t* idx, const float* x, int64_t W, int64_t Ho, int64_t Wo),
                   (y, idx, x, W, Ho, Wo), plane_maxpool2x2_body)

BNLAB_INLINE void row_dropout_pairs_body(float* y, uint8_t* keep, const float* x, int64_t first, int64_t pairs,
                       uint64_t key, uint32_t threshold, float scale) {
  row_dropout_pairs<float>(y, keep, x, first, pairs, key, threshold, scale);
}
BNLAB_MULTIVERSION(void, row_dropout_pairs, (float* y, uint8_t* keep, const float* x, int64_t first, int64_t pairs, uint64_t key, uint32_t threshold, float scale),
                   (y, keep, x, first, pairs, key, threshold, scale), row_dropout_pairs_body)

BNLAB_INLINE void row_dropout_backward_body(float* dx, const float* dy, const uint8_t* keep, int64_t n, float scale) {
  row_dropout_backward<float>(dx, dy, keep, n, scale);
}
BNLAB_MULTIVERSION(void, row_dropout_backward, (float* dx, const float* dy, const uint8_t* keep, int64_t n, float scale),
                   (dx, dy, keep, n, scale), row_dropout_backward_body)

BNLAB_INLINE void row_relu_body(float* y, const float* x, int64_t n) { row_relu<float>(y, x, n); }
BNLAB_MULTIVERSION(void, row_relu, (float* y, const float* x, int64_t n),
                   (y, x, n), row_relu_body)

BNLAB_INLINE void row_relu_backward_body(float* dx, const float* dy, const float* y, int64_t n) { row_relu_backward<float>(dx, dy, y, n); }
BNLAB_MULTIVERSION(void, row_relu_backward, (float* dx, const float* dy, const float* y, int64_t n),
                   (dx, dy, y, n), row_relu_backward_body)

BNLAB_INLINE int64_t row_count_non_finite_body(const float* x, int64_t n) { return row_count_non_finite_of(x, n); }
BNLAB_MULTIVERSION(int64_t, row_count_non_finite, (const float* x, int64_t n), (x, n), row_count_non_finite_body)

BNLAB_INLINE void row_add_body(float* y, const float* x, int64_t n) { row_add<float>(y, x, n); }
BNLAB_MULTIVERSION(void, row_add, (float* y, const float* x, int64_t n),
                   (y, x, n), row_add_body)

}  // namespace bnlab::kernels
