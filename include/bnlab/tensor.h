// Shapes and named tensor views. bnlab keeps data in flat buffers owned by a Network (parameters,
// gradients, running statistics) or by the caller; a view names a slice of such a buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <string>
#include <string_view>
#include <vector>

namespace bnlab {

// Per-sample or full shape, outermost dimension first (C, H, W) or (N, C, H, W).
using Shape = std::vector<int64_t>;

int64_t numel(const Shape& shape);
std::string to_string(const Shape& shape);  // "32x26x26"; "scalar" for {}

// The most values bnlab allows in one tensor, in one sample's output of a layer, and in all of a
// network's parameters (or running statistics): 2^26, 256 MiB of float. Sizes are checked against
// it before anything is allocated, which also keeps every size computation far from overflow.
constexpr int64_t kMaxValues = int64_t{1} << 26;

// numel(shape) for a shape of positive sizes holding at most kMaxValues values; otherwise throws
// Error "<where>: <field>: ..." (the product is computed without overflow).
int64_t checked_numel(const Shape& shape, std::string_view where, std::string_view field);

// Storage on 64-byte boundaries: a vector load or store of a row that starts a buffer never
// splits a cache line (malloc's 16-byte alignment made every AVX-512 store of the batch norm and
// convolution kernels touch two lines).
template <typename T>
struct CacheAligned {
  using value_type = T;
  static constexpr std::align_val_t kAlignment{64};
  CacheAligned() = default;
  template <typename U>
  CacheAligned(const CacheAligned<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), kAlignment)); }
  void deallocate(T* p, size_t) { ::operator delete(p, kAlignment); }
  template <typename U>
  bool operator==(const CacheAligned<U>&) const { return true; }
};
template <typename T>
using AlignedVector = std::vector<T, CacheAligned<T>>;

enum class DType { F32, I64 };

// A tensor that lives elsewhere: a checkpoint entry, a parameter, a running statistic.
struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  void* data = nullptr;
};

}  // namespace bnlab
