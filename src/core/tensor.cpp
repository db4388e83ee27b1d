#include "bnlab/tensor.h"

#include "bnlab/error.h"

namespace bnlab {

int64_t numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

int64_t checked_numel(const Shape& shape, std::string_view where, std::string_view field) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d <= 0) fail(where, field, "sizes " + to_string(shape) + " must all be positive");
    if (d > kMaxValues || (n *= d) > kMaxValues) {  // both factors <= 2^26: no overflow
      fail(where, field, to_string(shape) + " is too large (more than " + std::to_string(kMaxValues) +
                             " values)");
    }
  }
  return n;
}

std::string to_string(const Shape& shape) {
  if (shape.empty()) return "scalar";
  std::string s;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s.push_back('x');
    s.append(std::to_string(shape[i]));
  }
  return s;
}

}  // namespace bnlab
