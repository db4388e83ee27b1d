// safetensors reading and writing. The reader trusts nothing: the header length is checked
// against the file size before it is read, every entry's dtype, shape and byte range against the
// data section (in range, exactly numel * itemsize long, no overlaps or holes).
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "bnlab/atomic_file.h"
#include "bnlab/checkpoint.h"
#include "bnlab/error.h"

namespace bnlab {
namespace {

using nlohmann::json;
constexpr int64_t kMaxHeader = 100 << 20;  // the format's own limit on the JSON header

const char* dtype_name(DType t) { return t == DType::F32 ? "F32" : "I64"; }
int64_t dtype_size(DType t) { return t == DType::F32 ? 4 : 8; }

SafetensorsEntry parse_entry(const std::string& path, const std::string& name, const json& j,
                             int64_t data_size) {
  auto bad = [&](const std::string& what) { fail(path, "tensor '" + name + "'", what); };
  if (!j.is_object()) bad("header entry is not an object");
  SafetensorsEntry e;
  const auto dtype = j.find("dtype");
  if (dtype == j.end() || !dtype->is_string()) bad("dtype missing");
  const std::string d = dtype->get<std::string>();
  if (d == "F32") e.dtype = DType::F32;
  else if (d == "I64") e.dtype = DType::I64;
  else bad("unsupported dtype " + d + " (bnlab reads F32 and I64)");
  const auto shape = j.find("shape");
  if (shape == j.end() || !shape->is_array()) bad("shape missing");
  int64_t count = 1;
  for (const json& dim : *shape) {
    if (!dim.is_number_unsigned()) bad("shape holds a non-integer or negative size");
    const uint64_t v = dim.get<uint64_t>();
    if (v > static_cast<uint64_t>(data_size) ||
        __builtin_mul_overflow(count, static_cast<int64_t>(v), &count) || count > data_size) {
      bad("shape " + shape->dump() + " is larger than the file");
    }
    e.shape.push_back(static_cast<int64_t>(v));
  }
  const auto offsets = j.find("data_offsets");
  if (offsets == j.end() || !offsets->is_array() || offsets->size() != 2 ||
      !(*offsets)[0].is_number_unsigned() || !(*offsets)[1].is_number_unsigned()) {
    bad("data_offsets must be two non-negative integers");
  }
  const uint64_t begin = (*offsets)[0].get<uint64_t>(), end = (*offsets)[1].get<uint64_t>();
  if (begin > end || end > static_cast<uint64_t>(data_size)) {
    bad("data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
        "] fall outside the " + std::to_string(data_size) + "-byte data section");
  }
  e.begin = static_cast<int64_t>(begin);
  e.end = static_cast<int64_t>(end);
  if (e.end - e.begin != count * dtype_size(e.dtype)) {
    bad("data_offsets span " + std::to_string(e.end - e.begin) + " bytes but shape " +
        to_string(e.shape) + " of " + d + " needs " + std::to_string(count * dtype_size(e.dtype)));
  }
  return e;
}

}  // namespace

SafetensorsFile read_safetensors(const std::string& path) {
  SafetensorsFile file;
  file.path = path;
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) fail(path, "", "cannot open (" + ec.message() + ")");
  const int64_t file_size = static_cast<int64_t>(size);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "", "cannot open");
  if (file_size < 8) fail(path, "header", "file too short for a safetensors header");
  uint8_t length_bytes[8];
  in.read(reinterpret_cast<char*>(length_bytes), 8);
  uint64_t header_length = 0;
  for (int i = 7; i >= 0; --i) header_length = header_length << 8 | length_bytes[i];
  if (header_length > static_cast<uint64_t>(file_size - 8) || header_length > kMaxHeader) {
    fail(path, "header", "length " + std::to_string(header_length) + " exceeds the file's " +
                             std::to_string(file_size - 8) + " remaining bytes");
  }
  std::string header(header_length, '\0');
  in.read(header.data(), static_cast<std::streamsize>(header_length));
  if (!in) fail(path, "header", "cannot read");
  const json root = json::parse(header, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded() || !root.is_object()) fail(path, "header", "is not a JSON object");

  const int64_t data_size = file_size - 8 - static_cast<int64_t>(header_length);
  std::vector<std::pair<int64_t, int64_t>> ranges;
  for (const auto& [name, value] : root.items()) {
    if (name == "__metadata__") {
      if (!value.is_object()) fail(path, "__metadata__", "is not an object");
      for (const auto& [key, v] : value.items()) {
        if (!v.is_string()) fail(path, "__metadata__", "value of '" + key + "' is not a string");
        file.metadata[key] = v.get<std::string>();
      }
      continue;
    }
    SafetensorsEntry e = parse_entry(path, name, value, data_size);
    ranges.emplace_back(e.begin, e.end);
    file.entries[name] = std::move(e);
  }
  std::sort(ranges.begin(), ranges.end());
  int64_t expected = 0;
  for (const auto& [begin, end] : ranges) {
    if (begin != expected) {
      fail(path, "data_offsets", begin < expected ? "tensors overlap at byte " + std::to_string(begin)
                                                  : "hole before byte " + std::to_string(begin));
    }
    expected = end;
  }
  if (expected != data_size) {
    fail(path, "data", std::to_string(data_size - expected) + " bytes follow the last tensor");
  }
  file.data.resize(static_cast<size_t>(data_size));
  in.read(reinterpret_cast<char*>(file.data.data()), data_size);
  if (!in) fail(path, "data", "cannot read");
  return file;
}

namespace {
const SafetensorsEntry& checked(const SafetensorsFile& f, const std::string& name, DType dtype,
                                const Shape& expected) {
  auto it = f.entries.find(name);
  if (it == f.entries.end()) fail(f.path, "tensor '" + name + "'", "missing");
  if (it->second.dtype != dtype) {
    fail(f.path, "tensor '" + name + "'",
         std::string("dtype ") + dtype_name(it->second.dtype) + ", expected " + dtype_name(dtype));
  }
  if (it->second.shape != expected) {
    fail(f.path, "tensor '" + name + "'",
         "shape " + to_string(it->second.shape) + ", expected " + to_string(expected));
  }
  return it->second;
}
}  // namespace

const float* SafetensorsFile::f32(const std::string& name, const Shape& expected) const {
  return reinterpret_cast<const float*>(data.data() + checked(*this, name, DType::F32, expected).begin);
}

std::vector<int64_t> SafetensorsFile::i64(const std::string& name, const Shape& expected) const {
  const SafetensorsEntry& e = checked(*this, name, DType::I64, expected);
  std::vector<int64_t> values(static_cast<size_t>(numel(expected)));
  // An empty tensor has no bytes, and both pointers may be null, which memcpy does not allow.
  if (!values.empty()) std::memcpy(values.data(), data.data() + e.begin, values.size() * sizeof(int64_t));
  return values;
}

void write_safetensors(const std::string& path, const std::vector<TensorView>& tensors,
                       const Metadata& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  int64_t offset = 0;
  for (const TensorView& t : tensors) {
    const int64_t bytes = numel(t.shape) * dtype_size(t.dtype);
    header[t.name] = {{"dtype", dtype_name(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // data section starts 8-byte aligned
  uint8_t length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<uint8_t>(static_cast<uint64_t>(text.size()) >> (8 * i));
  write_file_atomically(path, [&](const ByteSink& sink) {
    sink({length, 8});
    sink({reinterpret_cast<const uint8_t*>(text.data()), text.size()});
    for (const TensorView& t : tensors) {
      sink({static_cast<const uint8_t*>(t.data), static_cast<size_t>(numel(t.shape) * dtype_size(t.dtype))});
    }
  });
}

}  // namespace bnlab
