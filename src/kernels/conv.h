// 2-D convolution (cross-correlation, as PyTorch's Conv2d).
// Legend: N batch, Ci/Co input/output channels, H W input size, Ho Wo output size, K kernel.
//   Ho = (H + 2*pad - KH) / stride + 1, likewise Wo.
//   y[n, o, p] = bias[o] + sum_{i,kh,kw} w[o, i, kh, kw] * x[n, i, p*stride - pad + k]
// Three algorithms, chosen by the geometry: 3x3 stride-1 kernels over several input channels run
// Winograd's F(2x2, 3x3) (winograd.h: 2.25x fewer multiply-adds); stride-1 kernels over very few
// input values per output (the first layer: 1 x 3 x 3) run forward as a direct convolution, whose
// rows vectorize where im2col's GEMM would have a depth of 9, and backward as im2col + GEMM (its
// 3x3 kernels' weight gradient, in float on AVX-512, summed directly instead:
// conv3x3_weight_grad_lanes); everything else runs im2col + GEMM.
// Samples are shared among threads in fixed blocks; each thread owns a slice of the scratch and,
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

enum class ConvAlgorithm { Im2col, Winograd, Direct };
ConvAlgorithm conv_algorithm(const ConvGeometry& g);

// What inference folds into the output (in this order, each optional): y * scale + shift per
// output channel (a BatchNorm in eval mode: the same operations as bn_normalize), ReLU, and a
// 2x2, stride-2 max-pool (y is then (N, Co, Ho/2, Wo/2)).
template <typename T>
struct ConvEpilogue {
  const T* scale = nullptr;  // (Co), with shift
  const T* shift = nullptr;
  bool relu = false;
  bool maxpool2x2 = false;
};
// The max-pool folds into Winograd's output transform: its 2x2 tiles are the pooling windows.
bool conv_can_pool(const ConvGeometry& g);

// Scratch, in elements, for conv2d_forward and conv2d_backward on `threads` threads, and the
// weight-gradient scratch of conv2d_backward.
int64_t conv_scratch_size(const ConvGeometry& g, int threads);
int64_t conv_weight_scratch_size(const ConvGeometry& g, int threads);
// The bias gradient's scratch of conv2d_backward, in doubles, for a batch of N: each sample's sum
// of each output plane.
int64_t conv_bias_scratch_size(const ConvGeometry& g, int64_t N);

// col (Ci*KH*KW, Ho*Wo) <- x (Ci, H, W); zero where the window falls on padding.
template <typename T>
void im2col(T* col, const T* x, const ConvGeometry& g);

// dx (Ci, H, W) += scatter of dcol (Ci*KH*KW, Ho*Wo); dx must be zeroed by the caller.
template <typename T>
void col2im_add(T* dx, const T* dcol, const ConvGeometry& g);

// y (N, Co, Ho, Wo) <- conv(x (N, Ci, H, W), w (Co, Ci, KH, KW)) + bias (Co, may be null).
// scratch: conv_scratch_size(g, threads); runs on at most `threads` threads.
template <typename T>
void conv2d_forward(T* y, const T* x, const T* w, const T* bias, T* scratch,
                    const ConvGeometry& g, int64_t N, int threads, const ConvEpilogue<T>& epilogue = {});

// dx (N, Ci, H, W) = input gradient (skipped when dx is null); dw (Co, Ci, KH, KW) += weight
// gradient; dbias (Co) += sum of dy (skipped when null). Scratch: conv_scratch_size(g, threads),
// conv_weight_scratch_size(g, threads) and, with dbias, conv_bias_scratch_size(g, N).
template <typename T>
void conv2d_backward(T* dx, T* dw, T* dbias, const T* dy, const T* x, const T* w, T* scratch,
                     T* dw_scratch, double* bias_scratch, const ConvGeometry& g, int64_t N, int threads);

// The Direct algorithm's weight gradient with AVX-512 (x86/conv_weight_grad_avx512.cpp), where
// conv3x3_weight_grad_fits (3x3, stride-1, unpadded kernels, output rows of at most 32: a matter
// of geometry, which sizes the scratch) and avx512_enabled() (checked at each call; else
// conv2d_backward runs im2col and the BLAS). lanes (Co, Ci, 9, 32) += one sample's products
// dy[o][oh][ow] * x[i][oh + kh][ow + kw], summed over oh in lane ow; then dw (Co, Ci, 3, 3) +=
// each tap's 32 lanes, added up in a fixed order.
bool conv3x3_weight_grad_fits(const ConvGeometry& g);
constexpr int64_t kConv3x3GradLanes = 32;
void conv3x3_weight_grad_lanes(float* lanes, const float* x_n, const float* dy_n, const ConvGeometry& g);
void conv3x3_weight_grad_add_lanes(float* dw, const float* lanes, const ConvGeometry& g);

// sums (Co) = the sum, in double, of each output plane of one sample's dy (Co, P): the sample's
// part of the bias gradient, taken by the thread that reads dy_n for the products while dy_n is
// in its cache, instead of in a pass of its own over dy from memory.
template <typename T>
void output_plane_sums(double* sums, const T* dy_n, int64_t Co, int64_t P);

}  // namespace bnlab::kernels
