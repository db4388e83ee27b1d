# The kernels (src/kernels): their sources, grouped by what they compute, and the per-file
# floating-point flags that bnlab's bit-exactness depends on. Included by src/CMakeLists.txt, which
# adds ${BNLAB_KERNEL_SOURCES} to the library (source properties are set in the including
# directory's scope, where the target is). Each flagged file says so in its header comment, and a
# test fails if the flag is lost (FpContract.* in fp_contract_test.cpp).
set(_k ${CMAKE_CURRENT_LIST_DIR})
set(BNLAB_KERNEL_SOURCES
  # batch norm: statistics, normalization, backward, the fused forward, and their row loops
  ${_k}/batchnorm/batchnorm.cpp ${_k}/batchnorm/batchnorm_fused.cpp ${_k}/batchnorm/rows.cpp
  ${_k}/batchnorm/row_moments.cpp
  # Batch Renormalization's r and d, folded into BN's coefficients
  ${_k}/batchnorm/renorm.cpp
  # GroupNorm, InstanceNorm and LayerNorm: one per-sample-group set (groupnorm/groupnorm.h)
  ${_k}/groupnorm/groupnorm.cpp
  # convolution: direct, im2col + GEMM, and Winograd F(2x2, 3x3) with its transforms
  ${_k}/conv.cpp ${_k}/vector_rows.cpp ${_k}/gemm.cpp
  ${_k}/winograd/conv_winograd.cpp ${_k}/winograd/winograd_input.cpp ${_k}/winograd/winograd_output.cpp
  ${_k}/winograd/winograd_filter.cpp
  # pooling: max (with the 2x2 fast path), average, global average
  ${_k}/pool/pool.cpp ${_k}/pool/avgpool.cpp
  # the run-time choice of instruction set (BNLAB_MAX_CPU_ISA), and the hand-written AVX-512 paths
  ${_k}/x86/cpu_isa.cpp
  ${_k}/x86/winograd_avx512.cpp ${_k}/x86/pool_avx512.cpp ${_k}/x86/gemm_nt_avx512.cpp
  ${_k}/x86/conv_weight_grad_avx512.cpp
  ${_k}/transpose.cpp ${_k}/x86/transpose_avx512.cpp
  ${_k}/elementwise.cpp ${_k}/scalar.cpp ${_k}/softmax.cpp ${_k}/linear.cpp ${_k}/sigmoid.cpp)
# x * alpha + beta must become one FMA where the CPU has it, as in PyTorch (batchnorm/rows.h); the
# Winograd transforms apply the same map when inference folds BN into the convolution.
set_source_files_properties(${_k}/batchnorm/rows.cpp ${_k}/winograd/winograd_input.cpp
  ${_k}/winograd/winograd_output.cpp ${_k}/winograd/winograd_filter.cpp
  PROPERTIES COMPILE_OPTIONS -ffp-contract=fast)
# BN's one-pass statistics must not: a square rounded, then added, in every clone (row_moments.cpp).
set_source_files_properties(${_k}/batchnorm/row_moments.cpp PROPERTIES COMPILE_OPTIONS -ffp-contract=off)
unset(_k)
