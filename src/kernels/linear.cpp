#include "kernels/linear.h"

#include "kernels/gemm.h"
#include "kernels/transpose.h"

#include <omp.h>

#include <algorithm>

namespace bnlab::kernels {

template <typename T>
void linear_forward(T* y, const T* x, const T* w, const T* bias, int64_t N, int64_t I, int64_t O, T* scratch) {
  if (scratch) {
    // Blocks of samples, one a thread (as gemm_parallel cuts, multiples of 16), each transposed
    // by the thread that multiplies it: its x^T stays in that core's cache. With one x^T that
    // both threads wrote and then read whole, the product fetched half of it from the other
    // core's cache: fc1's forward took 0.67-0.74 ms against 0.44 with the transpose left out
    // (64 x 9216, AMD EPYC Zen 5, 2 threads); now each thread reads all of w instead. A batch
    // too small to cut (one block) is transposed whole and its product cut along w's rows.
    const int64_t threads = omp_in_parallel() ? 1 : omp_get_max_threads();
    const int64_t block = std::max<int64_t>(16, ((N + threads - 1) / threads + 15) / 16 * 16);  // blocks <= threads
    const int64_t blocks = (N + block - 1) / block;
    auto unpack = [&](const T* yt, int64_t n0, int64_t len) {  // y's rows [n0, n0 + len) from yt (O, len)
      for (int64_t n = 0; n < len; ++n)
        for (int64_t o = 0; o < O; ++o) y[(n0 + n) * O + o] = bias ? yt[o * len + n] + bias[o] : yt[o * len + n];
    };
    if (blocks == 1) {
      transpose(scratch, x, N, I);
      gemm_parallel(Trans::No, Trans::No, O, N, I, T(1), w, I, scratch, N, T(0), scratch + N * I, N);
      unpack(scratch + N * I, 0, N);
      return;
    }
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t n0 = b * block, len = std::min(block, N - n0);
      T* xt = scratch + n0 * I;          // (I, len)
      T* yt = scratch + N * I + n0 * O;  // (O, len)
      transpose(xt, x + n0 * I, len, I);
      gemm(Trans::No, Trans::No, O, len, I, T(1), w, I, xt, len, T(0), yt, len);
      unpack(yt, n0, len);
    }
    return;
  }
  if (bias) {
    for (int64_t n = 0; n < N; ++n)
      for (int64_t o = 0; o < O; ++o) y[n * O + o] = bias[o];
  }
  gemm_parallel(Trans::No, Trans::Yes, N, O, I, T(1), x, I, w, I, bias ? T(1) : T(0), y, O);
}

template <typename T>
void linear_backward(T* dx, T* dw, T* dbias, const T* dy, const T* x, const T* w, int64_t N,
                     int64_t I, int64_t O) {
  gemm_parallel(Trans::Yes, Trans::No, O, I, N, T(1), dy, O, x, I, T(1), dw, I);
  if (dx) gemm_parallel(Trans::No, Trans::No, N, I, O, T(1), dy, O, w, I, T(0), dx, I);
  if (dbias) {
    for (int64_t o = 0; o < O; ++o) {
      double acc = 0;
      for (int64_t n = 0; n < N; ++n) acc += dy[n * O + o];
      dbias[o] += static_cast<T>(acc);
    }
  }
}

template void linear_forward<float>(float*, const float*, const float*, const float*, int64_t,
                                    int64_t, int64_t, float*);
template void linear_forward<double>(double*, const double*, const double*, const double*, int64_t,
                                     int64_t, int64_t, double*);
template void linear_backward<float>(float*, float*, float*, const float*, const float*,
                                     const float*, int64_t, int64_t, int64_t);
template void linear_backward<double>(double*, double*, double*, const double*, const double*,
                                      const double*, int64_t, int64_t, int64_t);

}  // namespace bnlab::kernels
