// Checkpoints in the safetensors format (https://github.com/huggingface/safetensors): an 8-byte
// little-endian header length, a JSON header {name: {dtype, shape, data_offsets}, __metadata__},
// then the raw little-endian tensor bytes. Keys are PyTorch's state_dict names, so a file loads
// into the equivalent torch.nn.Module with load_state_dict(strict=True).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "bnlab/network.h"
#include "bnlab/tensor.h"

namespace bnlab {

using Metadata = std::map<std::string, std::string>;

struct SafetensorsEntry {
  DType dtype = DType::F32;
  Shape shape;
  int64_t begin = 0, end = 0;  // byte range in the data section
};

// A whole safetensors file read into memory after its header was checked against its size.
struct SafetensorsFile {
  std::string path;
  Metadata metadata;
  std::map<std::string, SafetensorsEntry> entries;
  std::vector<uint8_t> data;

  // The entry's values; throws Error naming the tensor if absent or of another dtype or shape.
  // (F32 data is 4-byte aligned in any valid file; I64 may not be 8-byte aligned, so it is copied.)
  const float* f32(const std::string& name, const Shape& expected) const;
  std::vector<int64_t> i64(const std::string& name, const Shape& expected) const;
};

SafetensorsFile read_safetensors(const std::string& path);

// Writes atomically (temporary file, fsync, rename): a failure leaves any old file intact.
void write_safetensors(const std::string& path, const std::vector<TensorView>& tensors,
                       const Metadata& metadata);

// The network's state_dict, plus `metadata` (bnlab adds "format": "pt" and the model spec).
void save_checkpoint(Network& net, const std::string& path, const Metadata& metadata = {});

// Loads every tensor of the network's state_dict; the file must hold exactly those keys with the
// same shapes and dtypes (strict, as PyTorch's default), else Error names the tensor.
// Returns the file's metadata.
Metadata load_checkpoint(Network& net, const std::string& path);

// Copies the named tensors out of an open file after checking every name, dtype and shape
// (nothing is changed when one does not match).
void copy_tensors(const SafetensorsFile& file, const std::vector<TensorView>& into);

}  // namespace bnlab
