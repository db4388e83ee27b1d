// The window checks of the pooling layers (MaxPool2d, AvgPool2d): one rule for both, the error
// naming the layer and the key.
#pragma once

#include <string>

#include "bnlab/error.h"
#include "bnlab/tensor.h"
#include "kernels/pool/pool.h"

namespace bnlab {

inline kernels::PoolGeometry pool_window(const char* type, const Shape& in, int64_t kernel, int64_t stride,
                                         int64_t padding) {
  if (in.size() != 3) fail(type, "input", "expects (C, H, W) per sample, got " + to_string(in));
  if (kernel <= 0) fail(type, "kernel_size", "must be positive");
  if (stride <= 0) fail(type, "stride", "must be positive");
  // With the input and the kernel at most kMaxValues, no size below can overflow.
  if (kernel > kMaxValues) fail(type, "kernel_size", "must be at most " + std::to_string(kMaxValues));
  if (padding < 0 || padding > kernel / 2) fail(type, "padding", "must be between 0 and half the kernel size");
  checked_numel(in, type, "input");
  if (in[1] + 2 * padding < kernel || in[2] + 2 * padding < kernel) {
    fail(type, "kernel_size", "window larger than the input " + to_string(in));
  }
  return {in[0], in[1], in[2], kernel, stride, padding};
}

}  // namespace bnlab
