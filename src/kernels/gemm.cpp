#include "kernels/gemm.h"

#include <cblas.h>
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>

#include <algorithm>

namespace bnlab::kernels {
namespace {

CBLAS_TRANSPOSE to_cblas(Trans t) { return t == Trans::Yes ? CblasTrans : CblasNoTrans; }

// float goes to oneDNN's sgemm: its JIT picks AVX-512 kernels at run time (about twice
// OpenBLAS's speed on these machines, where OpenBLAS must be pinned to its Haswell kernels) and
// falls back to AVX2 or SSE on older CPUs. Called inside our parallel regions it stays on the
// calling thread. Row-major, like the rest of bnlab.
void call_gemm(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
               int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  dnnl_sgemm(ta == Trans::Yes ? 'T' : 'N', tb == Trans::Yes ? 'T' : 'N', M, N, K, alpha, A, lda, B,
             ldb, beta, C, ldc);
}

// The BLAS threading policy is this file's: OpenBLAS (double, the tests) runs single-threaded,
// since bnlab's kernels hand it their own thread shares. Set once, before its first call (a
// thread-safe static, also when that call comes from inside a parallel region).
void blas_use_single_thread() {
  static const bool once = (openblas_set_num_threads(1), true);
  (void)once;
}

void call_gemm(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, double alpha, const double* A,
               int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  blas_use_single_thread();
  cblas_dgemm(CblasRowMajor, to_cblas(ta), to_cblas(tb), static_cast<int>(M), static_cast<int>(N),
              static_cast<int>(K), alpha, A, static_cast<int>(lda), B, static_cast<int>(ldb), beta,
              C, static_cast<int>(ldc));
}

}  // namespace

template <typename T>
void gemm(Trans trans_a, Trans trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
          int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  call_gemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

template <typename T>
void gemm_parallel(Trans trans_a, Trans trans_b, int64_t M, int64_t N, int64_t K, T alpha,
                   const T* A, int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  const int64_t threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  // Split the longer side of C; blocks are multiples of 16 to keep the BLAS kernels whole.
  const bool split_rows = M >= N;
  const int64_t extent = split_rows ? M : N;
  const int64_t block = std::max<int64_t>(16, (extent / threads + 15) / 16 * 16);
  const int64_t blocks = (extent + block - 1) / block;
  if (blocks <= 1) {
    gemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t begin = b * block;
    const int64_t len = std::min(block, extent - begin);
    if (split_rows) {  // rows of op(A) and of C
      const T* a = trans_a == Trans::No ? A + begin * lda : A + begin;
      gemm(trans_a, trans_b, len, N, K, alpha, a, lda, B, ldb, beta, C + begin * ldc, ldc);
    } else {  // columns of op(B) and of C
      const T* b_ptr = trans_b == Trans::No ? B + begin : B + begin * ldb;
      gemm(trans_a, trans_b, M, len, K, alpha, A, lda, b_ptr, ldb, beta, C + begin, ldc);
    }
  }
}

template void gemm<float>(Trans, Trans, int64_t, int64_t, int64_t, float, const float*, int64_t,
                          const float*, int64_t, float, float*, int64_t);
template void gemm<double>(Trans, Trans, int64_t, int64_t, int64_t, double, const double*, int64_t,
                           const double*, int64_t, double, double*, int64_t);
template void gemm_parallel<float>(Trans, Trans, int64_t, int64_t, int64_t, float, const float*,
                                   int64_t, const float*, int64_t, float, float*, int64_t);
template void gemm_parallel<double>(Trans, Trans, int64_t, int64_t, int64_t, double, const double*,
                                    int64_t, const double*, int64_t, double, double*, int64_t);

}  // namespace bnlab::kernels
