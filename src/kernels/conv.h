// 2-D convolution (cross-correlation, as PyTorch's Conv2d) as im2col + GEMM, one sample at a time.
// Legend: N batch, Ci/Co input/output channels, H W input size, Ho Wo output size, K kernel.
//   Ho = (H + 2*pad - KH) / stride + 1, likewise Wo.
//   y[n, o, p] = bias[o] + sum_{i,kh,kw} w[o, i, kh, kw] * x[n, i, p*stride - pad + k]
// Samples are shared among threads in fixed blocks; each thread owns a slice of `col` scratch and,
// in backward, its own partial weight gradient, summed in thread order, so runs are reproducible.
#pragma once

#include <cstdint>

namespace bnlab::kernels {

struct ConvGeometry {
  int64_t in_channels, height, width;
  int64_t out_channels, kernel_h, kernel_w;
  int64_t stride, padding;

  int64_t out_height() const { return (height + 2 * padding - kernel_h) / stride + 1; }
  int64_t out_width() const { return (width + 2 * padding - kernel_w) / stride + 1; }
  int64_t col_rows() const { return in_channels * kernel_h * kernel_w; }
  int64_t col_size() const { return col_rows() * out_height() * out_width(); }
  int64_t weight_size() const { return out_channels * col_rows(); }
};

// col (Ci*KH*KW, Ho*Wo) <- x (Ci, H, W); zero where the window falls on padding.
template <typename T>
void im2col(T* col, const T* x, const ConvGeometry& g);

// dx (Ci, H, W) += scatter of dcol (Ci*KH*KW, Ho*Wo); dx must be zeroed by the caller.
template <typename T>
void col2im_add(T* dx, const T* dcol, const ConvGeometry& g);

// y (N, Co, Ho, Wo) <- conv(x (N, Ci, H, W), w (Co, Ci, KH, KW)) + bias (Co, may be null).
// col_scratch: threads * col_size(); runs on at most `threads` threads.
template <typename T>
void conv2d_forward(T* y, const T* x, const T* w, const T* bias, T* col_scratch,
                    const ConvGeometry& g, int64_t N, int threads);

// dx (N, Ci, H, W) = input gradient (skipped when dx is null); dw (Co, Ci, KH, KW) += weight
// gradient; dbias (Co) += sum of dy (skipped when null). Scratch: col_scratch threads *
// col_size(), dw_scratch threads * weight_size().
template <typename T>
void conv2d_backward(T* dx, T* dw, T* dbias, const T* dy, const T* x, const T* w, T* col_scratch,
                     T* dw_scratch, const ConvGeometry& g, int64_t N, int threads);

}  // namespace bnlab::kernels
