#include "kernels/pool/avgpool.h"

#include <algorithm>

namespace bnlab::kernels {

template <typename T>
void avgpool2d_forward(T* y, const T* x, const PoolGeometry& g, int64_t N) {
  const int64_t Ho = g.out_height(), Wo = g.out_width();
  const T divisor = static_cast<T>(g.kernel * g.kernel);
#pragma omp parallel for schedule(static)
  for (int64_t plane = 0; plane < N * g.channels; ++plane) {
    const T* in = x + plane * g.height * g.width;
    T* out = y + plane * Ho * Wo;
    for (int64_t oh = 0; oh < Ho; ++oh) {
      const int64_t h0 = oh * g.stride - g.padding;
      const int64_t h_begin = std::max<int64_t>(h0, 0), h_end = std::min(h0 + g.kernel, g.height);
      for (int64_t ow = 0; ow < Wo; ++ow) {
        const int64_t w0 = ow * g.stride - g.padding;
        const int64_t w_begin = std::max<int64_t>(w0, 0), w_end = std::min(w0 + g.kernel, g.width);
        T sum = 0;
        for (int64_t h = h_begin; h < h_end; ++h)
          for (int64_t w = w_begin; w < w_end; ++w) sum += in[h * g.width + w];
        out[oh * Wo + ow] = sum / divisor;
      }
    }
  }
}

template <typename T>
void avgpool2d_backward(T* dx, const T* dy, const PoolGeometry& g, int64_t N) {
  const int64_t Ho = g.out_height(), Wo = g.out_width();
  const T divisor = static_cast<T>(g.kernel * g.kernel);
#pragma omp parallel for schedule(static)
  for (int64_t plane = 0; plane < N * g.channels; ++plane) {
    T* in = dx + plane * g.height * g.width;
    const T* out = dy + plane * Ho * Wo;
    std::fill(in, in + g.height * g.width, T(0));
    for (int64_t oh = 0; oh < Ho; ++oh) {
      const int64_t h0 = oh * g.stride - g.padding;
      const int64_t h_begin = std::max<int64_t>(h0, 0), h_end = std::min(h0 + g.kernel, g.height);
      for (int64_t ow = 0; ow < Wo; ++ow) {
        const int64_t w0 = ow * g.stride - g.padding;
        const int64_t w_begin = std::max<int64_t>(w0, 0), w_end = std::min(w0 + g.kernel, g.width);
        const T share = out[oh * Wo + ow] / divisor;
        for (int64_t h = h_begin; h < h_end; ++h)
          for (int64_t w = w_begin; w < w_end; ++w) in[h * g.width + w] += share;
      }
    }
  }
}

template <typename T>
void plane_mean_forward(T* y, const T* x, int64_t planes, int64_t size) {
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < planes; ++p) {
    double sum = 0;
    for (int64_t i = 0; i < size; ++i) sum += x[p * size + i];
    y[p] = static_cast<T>(sum / static_cast<double>(size));
  }
}

template <typename T>
void plane_mean_backward(T* dx, const T* dy, int64_t planes, int64_t size) {
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < planes; ++p) {
    const T share = dy[p] / static_cast<T>(size);
    std::fill(dx + p * size, dx + (p + 1) * size, share);
  }
}

template void avgpool2d_forward<float>(float*, const float*, const PoolGeometry&, int64_t);
template void avgpool2d_forward<double>(double*, const double*, const PoolGeometry&, int64_t);
template void avgpool2d_backward<float>(float*, const float*, const PoolGeometry&, int64_t);
template void avgpool2d_backward<double>(double*, const double*, const PoolGeometry&, int64_t);
template void plane_mean_forward<float>(float*, const float*, int64_t, int64_t);
template void plane_mean_forward<double>(double*, const double*, int64_t, int64_t);
template void plane_mean_backward<float>(float*, const float*, int64_t, int64_t);
template void plane_mean_backward<double>(double*, const double*, int64_t, int64_t);

}  // namespace bnlab::kernels
