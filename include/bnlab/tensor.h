// Shapes and named tensor views. bnlab keeps data in flat buffers owned by a Network (parameters,
// gradients, running statistics) or by the caller; a view names a slice of such a buffer.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace bnlab {

// Per-sample or full shape, outermost dimension first (C, H, W) or (N, C, H, W).
using Shape = std::vector<int64_t>;

int64_t numel(const Shape& shape);
std::string to_string(const Shape& shape);  // "32x26x26"; "scalar" for {}

enum class DType { F32, I64 };

// A tensor that lives elsewhere: a checkpoint entry, a parameter, a running statistic.
struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  void* data = nullptr;
};

}  // namespace bnlab
