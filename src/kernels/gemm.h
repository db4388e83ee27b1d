// Row-major GEMM on top of CBLAS: C = alpha * op(A) * op(B) + beta * C, with op(A) (M x K),
// op(B) (K x N), C (M x N). `gemm` runs on the calling thread; `gemm_parallel` cuts C into
// fixed per-thread blocks of rows or columns, so a given thread count always yields the same bits.
// The BLAS itself runs single-threaded (gemm.cpp sets it before its first call).
#pragma once

#include <cstdint>

namespace bnlab::kernels {

enum class Trans { No, Yes };

template <typename T>
void gemm(Trans trans_a, Trans trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
          int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

template <typename T>
void gemm_parallel(Trans trans_a, Trans trans_b, int64_t M, int64_t N, int64_t K, T alpha,
                   const T* A, int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

// C (M x N) += A (M x K) B^T, B (N x K): both operands along K, on the calling thread, by
// AVX-512 dot products (x86/gemm_nt_avx512.cpp). Returns false, having done nothing, on a CPU
// without AVX-512 (or with BNLAB_MAX_CPU_ISA below it); the caller then runs gemm.
bool gemm_nt_accumulate_avx512(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
                               int64_t ldb, float* C, int64_t ldc);

}  // namespace bnlab::kernels
