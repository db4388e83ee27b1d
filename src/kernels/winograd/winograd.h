// Winograd's minimal filtering F(2x2, 3x3) for 3x3, stride-1 convolutions (Lavin & Gray 2016,
// "Fast Algorithms for Convolutional Neural Networks", arXiv:1509.09308). Each 2x2 block of
// outputs (a tile) comes from the 4x4 block of inputs under it:
//   Y = A^T [ U (.) V ] A,  U = G g G^T (the 3x3 filter g), V = B^T d B (the 4x4 input d),
// with (.) the element-wise product, summed over input channels. For each of the 16 positions xi
// of a 4x4 tile that sum is a matrix product, M_xi (Co, T) = U_xi (Co, Ci) * V_xi (Ci, T) over the
// T tiles of an image: 16 GEMMs of 2.25x fewer multiply-adds than the direct convolution's.
// Backward runs the same algebra in reverse (y = A^T M A gives dM = A dY A^T):
//   dU_xi (Co, Ci) = sum over tiles of dM_xi * V_xi^T,  dg = G^T dU G;
//   dV_xi (Ci, T) = U_xi^T * dM_xi,  dd = B dV B^T, added where the 4x4 input tiles overlap.
//       B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]   G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1]
//       A^T = [1 1 1 0; 0 1 -1 -1]
// The constants are 0, +-1 and +-1/2, so the transforms add error of the order of the inputs'
// rounding; float results stay within a few ulps of the direct convolution's.
//
// Legend: C channels, Co/Ci output/input channels, tiles_h x tiles_w tiles (T = their product).
// A tiled plane is exactly covered: inputs (2 tiles_h + 2, 2 tiles_w + 2), outputs
// (2 tiles_h, 2 tiles_w); conv.cpp pads or crops where a layer's sizes differ.
#pragma once

#include <cstdint>

#include "kernels/conv.h"

namespace bnlab::kernels {

constexpr int64_t kWinogradPositions = 16;  // a 4x4 tile

// Distance, in elements, between the 16 position planes of a tensor of `size` elements each.
// Planes are 64-byte aligned and one cache line more apart than their size: sizes such as
// 64 x 144 floats are multiples of 4 KiB, and 16 streams that far apart would fall into the same
// L1 sets and evict each other (seen: a 13x slower transform).
constexpr int64_t winograd_plane_stride(int64_t size) { return (size + 15) / 16 * 16 + 16; }

struct WinogradTiles {
  int64_t tiles_h, tiles_w;
  int64_t count() const { return tiles_h * tiles_w; }
  int64_t in_height() const { return 2 * tiles_h + 2; }
  int64_t in_width() const { return 2 * tiles_w + 2; }
  int64_t out_height() const { return 2 * tiles_h; }
  int64_t out_width() const { return 2 * tiles_w; }
};

// The 16-plane tensors below, written (16, ...), are laid out plane by plane with
// winograd_plane_stride(one plane's size) between planes.

// U (16, Co, Ci) = G g G^T of every filter g of w (Co, Ci, 3, 3).
template <typename T>
void winograd_filter(T* U, const T* w, int64_t Co, int64_t Ci);

// dw (Co, Ci, 3, 3) += G^T dU G for dU (16, Co, Ci).
template <typename T>
void winograd_filter_grad(T* dw, const T* dU, int64_t Co, int64_t Ci);

// V (16, C, T) = B^T d B of every input tile of x (C, in_height, in_width).
template <typename T>
void winograd_input(T* V, const T* x, int64_t C, const WinogradTiles& t);

// The float transforms on AVX-512 for rows of at most kAvx512MaxTilesW tiles
// (x86/winograd_avx512.cpp): each returns false, having done nothing, on a CPU without AVX-512 or for
// wider rows (the output transform also with the max-pool). The float winograd_input,
// winograd_input_grad, winograd_output and winograd_output_grad try them first, then the portable
// loops, which the _portable functions run whatever the CPU (the reference the AVX-512 paths are
// tested against).
constexpr int64_t kAvx512MaxTilesW = 15;
bool winograd_input_avx512(float* V, const float* x, int64_t C, const WinogradTiles& t);
bool winograd_output_avx512(float* y, const float* M, const float* bias, int64_t C, const WinogradTiles& t,
                            const ConvEpilogue<float>& e);
void winograd_output_portable(float* y, const float* M, const float* bias, int64_t C, const WinogradTiles& t,
                              const ConvEpilogue<float>& e);
bool winograd_input_grad_avx512(float* dx, const float* dV, int64_t C, const WinogradTiles& t);
bool winograd_output_grad_avx512(float* dM, const float* dy, int64_t C, const WinogradTiles& t);
void winograd_input_portable(float* V, const float* x, int64_t C, const WinogradTiles& t);
void winograd_input_grad_portable(float* dx, const float* dV, int64_t C, const WinogradTiles& t);
void winograd_output_grad_portable(float* dM, const float* dy, int64_t C, const WinogradTiles& t);

// dx (C, in_height, in_width) = the tiles B dV B^T of dV (16, C, T), summed where they overlap.
template <typename T>
void winograd_input_grad(T* dx, const T* dV, int64_t C, const WinogradTiles& t);

// y (C, out_height, out_width) = A^T M A (+ bias (C), may be null) of M (16, C, T), then the
// epilogue: with maxpool2x2, y is (C, tiles_h, tiles_w), each tile's maximum.
template <typename T>
void winograd_output(T* y, const T* M, const T* bias, int64_t C, const WinogradTiles& t,
                     const ConvEpilogue<T>& epilogue = {});

// dM (16, C, T) = A dY A^T of every 2x2 tile dY of dy (C, out_height, out_width).
template <typename T>
void winograd_output_grad(T* dM, const T* dy, int64_t C, const WinogradTiles& t);

// The convolution on top of these: what conv2d_forward / conv2d_backward run for
// ConvAlgorithm::Winograd, with the same contracts and scratch (conv.h).
template <typename T>
void winograd_conv2d_forward(T* y, const T* x, const T* w, const T* bias, T* scratch,
                             const ConvGeometry& g, int64_t N, int threads, const ConvEpilogue<T>& epilogue);
// Tiled planes equal the layer's: no padding and even output sizes.
bool winograd_exact(const ConvGeometry& g);
// plane_sums (N, Co), unless null: output_plane_sums of each sample's dy (conv.h).
template <typename T>
void winograd_conv2d_backward(T* dx, T* dw, const T* dy, const T* x, const T* w, T* scratch,
                              T* dw_scratch, double* plane_sums, const ConvGeometry& g, int64_t N,
                              int threads);
int64_t winograd_scratch_size(const ConvGeometry& g, int threads);
int64_t winograd_weight_scratch_size(const ConvGeometry& g, int threads);

}  // namespace bnlab::kernels
