// The filter transforms of Winograd's F(2x2, 3x3), U = G g G^T and its gradient (winograd.h has
// the algebra): once per filter and step, plain loops for the build's baseline instruction set.
// Compiled with -ffp-contract=fast like the other transform files (src/kernels/kernels.cmake);
// without FMA in the baseline there is nothing to contract.
#include "kernels/winograd/winograd.h"

#include <cstdint>

namespace bnlab::kernels {

// U = G g G^T: along a direction, g -> (g0, (g0 + g1 + g2) / 2, (g0 - g1 + g2) / 2, g2).
template <typename T>
void winograd_filter(T* U, const T* w, int64_t Co, int64_t Ci) {
  const int64_t plane = winograd_plane_stride(Co * Ci);
  const int64_t filters = Co * Ci;
  for (int64_t f = 0; f < filters; ++f) {
    const T* g = w + 9 * f;
    T rows[4][3];
    for (int s = 0; s < 3; ++s) {
      rows[0][s] = g[s];
      rows[1][s] = (g[s] + g[3 + s] + g[6 + s]) * T(0.5);
      rows[2][s] = (g[s] - g[3 + s] + g[6 + s]) * T(0.5);
      rows[3][s] = g[6 + s];
    }
    for (int k = 0; k < 4; ++k) {
      const T* r = rows[k];
      U[(4 * k + 0) * plane + f] = r[0];
      U[(4 * k + 1) * plane + f] = (r[0] + r[1] + r[2]) * T(0.5);
      U[(4 * k + 2) * plane + f] = (r[0] - r[1] + r[2]) * T(0.5);
      U[(4 * k + 3) * plane + f] = r[2];
    }
  }
}

// dg = G^T dU G: along a direction, u -> (u0 + (u1 + u2) / 2, (u1 - u2) / 2, (u1 + u2) / 2 + u3).
template <typename T>
void winograd_filter_grad(T* dw, const T* dU, int64_t Co, int64_t Ci) {
  const int64_t plane = winograd_plane_stride(Co * Ci);
  const int64_t filters = Co * Ci;
  for (int64_t f = 0; f < filters; ++f) {
    T cols[4][3];  // dU G: each row k of the 4x4 reduced to 3 columns
    for (int k = 0; k < 4; ++k) {
      const T u0 = dU[(4 * k + 0) * plane + f], u1 = dU[(4 * k + 1) * plane + f];
      const T u2 = dU[(4 * k + 2) * plane + f], u3 = dU[(4 * k + 3) * plane + f];
      cols[k][0] = u0 + (u1 + u2) * T(0.5);
      cols[k][1] = (u1 - u2) * T(0.5);
      cols[k][2] = (u1 + u2) * T(0.5) + u3;
    }
    T* g = dw + 9 * f;
    for (int s = 0; s < 3; ++s) {
      g[s] += cols[0][s] + (cols[1][s] + cols[2][s]) * T(0.5);
      g[3 + s] += (cols[1][s] - cols[2][s]) * T(0.5);
      g[6 + s] += (cols[1][s] + cols[2][s]) * T(0.5) + cols[3][s];
    }
  }
}

#define BNLAB_INSTANTIATE(T) \
  template void winograd_filter<T>(T*, const T*, int64_t, int64_t); \
  template void winograd_filter_grad<T>(T*, const T*, int64_t, int64_t);
BNLAB_INSTANTIATE(float)
BNLAB_INSTANTIATE(double)
#undef BNLAB_INSTANTIATE

}  // namespace bnlab::kernels
