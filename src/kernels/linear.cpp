#include "kernels/linear.h"

#include "kernels/gemm.h"

#include <algorithm>

namespace bnlab::kernels {

namespace {
// xt (I, N) = x (N, I)^T, in blocks of kColumns columns of x (rows of xt) per thread, so that a
// block of xt (kColumns x N floats) is written in L1 while x is read along its rows.
template <typename T>
void transpose(T* xt, const T* x, int64_t N, int64_t I) {
  constexpr int64_t kColumns = 64;
#pragma omp parallel for schedule(static)
  for (int64_t i0 = 0; i0 < I; i0 += kColumns) {
    const int64_t i1 = std::min(I, i0 + kColumns);
    for (int64_t n = 0; n < N; ++n) {
      const T* row = x + n * I;
      for (int64_t i = i0; i < i1; ++i) xt[i * N + n] = row[i];
    }
  }
}
}  // namespace

template <typename T>
void linear_forward(T* y, const T* x, const T* w, const T* bias, int64_t N, int64_t I, int64_t O, T* scratch) {
  if (scratch) {
    T* xt = scratch;
    T* yt = scratch + N * I;
    transpose(xt, x, N, I);
    gemm_parallel(Trans::No, Trans::No, O, N, I, T(1), w, I, xt, N, T(0), yt, N);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t o = 0; o < O; ++o) y[n * O + o] = bias ? yt[o * N + n] + bias[o] : yt[o * N + n];
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
