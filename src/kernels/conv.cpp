#include "kernels/conv.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "bnlab/error.h"
#include "kernels/gemm.h"
#include "kernels/batchnorm/rows.h"
#include "kernels/vector_rows.h"
#include "kernels/winograd/winograd.h"
#include "kernels/x86/cpu_isa.h"

namespace bnlab::kernels {

namespace {
// Output columns ow whose input column ow*stride - pad + k lies inside [0, width): [lo, hi).
void valid_columns(int64_t* lo, int64_t* hi, int64_t k, const ConvGeometry& g, int64_t Wo) {
  const int64_t offset = k - g.padding;  // iw = ow * stride + offset
  *lo = offset >= 0 ? 0 : (-offset + g.stride - 1) / g.stride;
  *hi = g.width - offset <= 0 ? 0 : std::min(Wo, (g.width - offset + g.stride - 1) / g.stride);
  *lo = std::min(*lo, *hi);
}

// dbias (Co) += the plane sums (N, Co) of output_plane_sums, added sample after sample. For float,
// the bits of adding each channel's planes into one double one after the other: row_sum adds a
// plane's sum, taken on its own, to its accumulator.
template <typename T>
void bias_grad_from_plane_sums(T* dbias, const double* plane_sums, int64_t Co, int64_t N) {
  for (int64_t o = 0; o < Co; ++o) {
    double acc = 0;
    for (int64_t n = 0; n < N; ++n) acc += plane_sums[n * Co + o];
    dbias[o] += static_cast<T>(acc);
  }
}
}  // namespace

template <typename T>
void output_plane_sums(double* sums, const T* dy_n, int64_t Co, int64_t P) {
  for (int64_t o = 0; o < Co; ++o) {
    sums[o] = 0;
    row_sum(dy_n + o * P, P, &sums[o]);
  }
}

int64_t conv_bias_scratch_size(const ConvGeometry& g, int64_t N) { return N * g.out_channels; }

// Winograd pays where the GEMMs dominate: with one or two input channels the im2col GEMM is
// tiny and the transforms would cost more than they save.
ConvAlgorithm conv_algorithm(const ConvGeometry& g) {
  constexpr int64_t kMinWinogradChannels = 4;
  constexpr int64_t kMaxDirectTaps = 27;  // Ci * KH * KW: 3 input channels of 3x3
  if (g.stride != 1) return ConvAlgorithm::Im2col;
  if (g.kernel_h == 3 && g.kernel_w == 3 && g.in_channels >= kMinWinogradChannels) return ConvAlgorithm::Winograd;
  // Direct's scratch (one output plane on the input's width) fits in im2col's.
  if (g.col_rows() <= kMaxDirectTaps && g.padding == 0) return ConvAlgorithm::Direct;
  return ConvAlgorithm::Im2col;
}

bool conv_can_pool(const ConvGeometry& g) {
  return conv_algorithm(g) == ConvAlgorithm::Winograd && winograd_exact(g);
}

int64_t conv_scratch_size(const ConvGeometry& g, int threads) {
  if (conv_algorithm(g) == ConvAlgorithm::Winograd) return winograd_scratch_size(g, threads);
  return threads * g.col_size();
}

namespace {
// Whether the float backward can sum the weight gradient directly, by lanes (conv.h), not by
// im2col and the BLAS: the geometry alone, so that the scratch's size does not depend on the
// instruction set allowed when it was reserved (the call checks avx512_enabled()).
bool weight_grad_by_lanes(const ConvGeometry& g) {
  return conv_algorithm(g) == ConvAlgorithm::Direct && conv3x3_weight_grad_fits(g);
}
// A thread's partial weight gradient, then its lanes where they can be used.
int64_t weight_scratch_per_thread(const ConvGeometry& g) {
  return g.weight_size() * (weight_grad_by_lanes(g) ? 1 + kConv3x3GradLanes : 1);
}
}  // namespace

int64_t conv_weight_scratch_size(const ConvGeometry& g, int threads) {
  if (conv_algorithm(g) == ConvAlgorithm::Winograd) return winograd_weight_scratch_size(g, threads);
  return threads * weight_scratch_per_thread(g);
}

template <typename T>
void im2col(T* col, const T* x, const ConvGeometry& g) {
  const int64_t Ho = g.out_height(), Wo = g.out_width();
  for (int64_t i = 0; i < g.in_channels; ++i) {
    for (int64_t kh = 0; kh < g.kernel_h; ++kh) {
      for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
        T* row = col + ((i * g.kernel_h + kh) * g.kernel_w + kw) * Ho * Wo;
        int64_t lo, hi;
        valid_columns(&lo, &hi, kw, g, Wo);
        for (int64_t oh = 0; oh < Ho; ++oh) {
          const int64_t ih = oh * g.stride - g.padding + kh;
          T* out = row + oh * Wo;
          if (ih < 0 || ih >= g.height) {
            std::fill(out, out + Wo, T(0));
            continue;
          }
          const T* in = x + (i * g.height + ih) * g.width + kw - g.padding;
          std::fill(out, out + lo, T(0));
          if (g.stride == 1) {
            std::copy(in + lo, in + hi, out + lo);
          } else {
            for (int64_t ow = lo; ow < hi; ++ow) out[ow] = in[ow * g.stride];
          }
          std::fill(out + hi, out + Wo, T(0));
        }
      }
    }
  }
}

template <typename T>
void col2im_add(T* dx, const T* dcol, const ConvGeometry& g) {
  const int64_t Ho = g.out_height(), Wo = g.out_width();
  for (int64_t i = 0; i < g.in_channels; ++i) {
    for (int64_t kh = 0; kh < g.kernel_h; ++kh) {
      for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
        const T* row = dcol + ((i * g.kernel_h + kh) * g.kernel_w + kw) * Ho * Wo;
        int64_t lo, hi;
        valid_columns(&lo, &hi, kw, g, Wo);
        for (int64_t oh = 0; oh < Ho; ++oh) {
          const int64_t ih = oh * g.stride - g.padding + kh;
          if (ih < 0 || ih >= g.height) continue;
          T* out = dx + (i * g.height + ih) * g.width + kw - g.padding;
          const T* in = row + oh * Wo;
          if (g.stride == 1) {
            row_add(out + lo, in + lo, hi - lo);
          } else {
            for (int64_t ow = lo; ow < hi; ++ow) out[ow * g.stride] += in[ow];
          }
        }
      }
    }
  }
}

template <typename T>
void conv2d_forward(T* y, const T* x, const T* w, const T* bias, T* col_scratch,
                    const ConvGeometry& g, int64_t N, int threads, const ConvEpilogue<T>& epilogue) {
  if (epilogue.maxpool2x2 && !conv_can_pool(g)) {
    fail("conv2d", "epilogue", "max-pooling needs Winograd's exact tiles (conv_can_pool)");
  }
  if (conv_algorithm(g) == ConvAlgorithm::Winograd) {
    winograd_conv2d_forward(y, x, w, bias, col_scratch, g, N, threads, epilogue);
    return;
  }
  const bool direct = conv_algorithm(g) == ConvAlgorithm::Direct;
  const int64_t P = g.out_height() * g.out_width();
  const int64_t in_size = g.in_channels * g.height * g.width;
#pragma omp parallel num_threads(threads)
  {
    T* col = col_scratch + omp_get_thread_num() * g.col_size();
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      T* out = y + n * g.out_channels * P;
      if (direct) {
        direct_conv(out, col, x + n * in_size, w, bias, g);
      } else {
        if (bias) {
          for (int64_t o = 0; o < g.out_channels; ++o) std::fill(out + o * P, out + (o + 1) * P, bias[o]);
        }
        im2col(col, x + n * in_size, g);
        gemm(Trans::No, Trans::No, g.out_channels, P, g.col_rows(), T(1), w, g.col_rows(), col, P,
             bias ? T(1) : T(0), out, P);
      }
      // The epilogue while the sample's output is still in cache, with BN's own row loops.
      for (int64_t o = 0; o < g.out_channels && (epilogue.scale || epilogue.relu); ++o) {
        T* row = out + o * P;
        if (epilogue.scale && epilogue.relu) row_affine_relu(row, row, P, epilogue.scale[o], epilogue.shift[o]);
        else if (epilogue.scale) row_affine(row, row, P, epilogue.scale[o], epilogue.shift[o]);
        else row_relu(row, row, P);
      }
    }
  }
}

template <typename T>
void conv2d_backward(T* dx, T* dw, T* dbias, const T* dy, const T* x, const T* w, T* col_scratch,
                     T* dw_scratch, double* bias_scratch, const ConvGeometry& g, int64_t N, int threads) {
  const int64_t P = g.out_height() * g.out_width();
  if (dbias && !bias_scratch) fail("conv2d", "bias_scratch", "a bias gradient needs conv_bias_scratch_size(g, N) doubles");
  double* plane_sums = dbias ? bias_scratch : nullptr;
  if (conv_algorithm(g) == ConvAlgorithm::Winograd) {
    winograd_conv2d_backward(dx, dw, dy, x, w, col_scratch, dw_scratch, plane_sums, g, N, threads);
    if (dbias) bias_grad_from_plane_sums(dbias, plane_sums, g.out_channels, N);
    return;
  }
  const int64_t in_size = g.in_channels * g.height * g.width;
  const int64_t wsize = g.weight_size(), per_thread = weight_scratch_per_thread(g);
  const bool by_lanes = std::is_same_v<T, float> && weight_grad_by_lanes(g) && avx512_enabled();
  int used = 1;
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num();
#pragma omp single
    used = omp_get_num_threads();
    T* col = col_scratch + t * g.col_size();
    T* dw_part = dw_scratch + t * per_thread;
    std::fill(dw_part, dw_part + per_thread, T(0));
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      const T* g_out = dy + n * g.out_channels * P;
      if (by_lanes) {
        if constexpr (std::is_same_v<T, float>) conv3x3_weight_grad_lanes(dw_part + wsize, x + n * in_size, g_out, g);
      } else {
        im2col(col, x + n * in_size, g);
        // dw_part (Co, CiKK) += dy_n (Co, P) * col^T (P, CiKK)
        gemm(Trans::No, Trans::Yes, g.out_channels, g.col_rows(), P, T(1), g_out, P, col, P, T(1),
             dw_part, g.col_rows());
      }
      if (plane_sums) output_plane_sums(plane_sums + n * g.out_channels, g_out, g.out_channels, P);
      if (dx) {
        // col (CiKK, P) = w^T (CiKK, Co) * dy_n (Co, P), then scattered back to the image.
        gemm(Trans::Yes, Trans::No, g.col_rows(), P, g.out_channels, T(1), w, g.col_rows(), g_out,
             P, T(0), col, P);
        T* dx_n = dx + n * in_size;
        std::fill(dx_n, dx_n + in_size, T(0));
        col2im_add(dx_n, col, g);
      }
    }
    if constexpr (std::is_same_v<T, float>) {
      if (by_lanes) conv3x3_weight_grad_add_lanes(dw_part, dw_part + wsize, g);
    }
  }
  // Fixed-order sum of the per-thread partials.
#pragma omp parallel for schedule(static)
  for (int64_t j = 0; j < wsize; ++j) {
    T acc = dw[j];
    for (int t = 0; t < used; ++t) acc += dw_scratch[t * per_thread + j];
    dw[j] = acc;
  }
  if (dbias) bias_grad_from_plane_sums(dbias, plane_sums, g.out_channels, N);
}

#define BNLAB_INSTANTIATE(T)                                                                  \
  template void im2col<T>(T*, const T*, const ConvGeometry&);                                 \
  template void col2im_add<T>(T*, const T*, const ConvGeometry&);                             \
  template void conv2d_forward<T>(T*, const T*, const T*, const T*, T*, const ConvGeometry&,  \
                                  int64_t, int, const ConvEpilogue<T>&);                      \
  template void conv2d_backward<T>(T*, T*, T*, const T*, const T*, const T*, T*, T*, double*, \
                                   const ConvGeometry&, int64_t, int);                        \
  template void output_plane_sums<T>(double*, const T*, int64_t, int64_t);
BNLAB_INSTANTIATE(float)
BNLAB_INSTANTIATE(double)
#undef BNLAB_INSTANTIATE

}  // namespace bnlab::kernels
