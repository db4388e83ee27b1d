// libFuzzer target for the safetensors reader (src/io/safetensors.cpp), which takes a path: each
// input is written to a file and read; when it parses, every entry is read back through the
// accessors, with its own dtype and shape (must succeed) and with the other dtype (must be an
// Error), and every byte the accessors expose is touched so that AddressSanitizer checks it.
// Only bnlab::Error may escape the reader; anything else is a bug.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "bnlab/checkpoint.h"
#include "bnlab/error.h"

namespace {

// One private file in a private directory ($TMPDIR, else /tmp), both removed at exit.
struct InputFile {
  std::string dir, path;
  InputFile() {
    const char* tmp = std::getenv("TMPDIR");
    dir = std::string(tmp && *tmp ? tmp : "/tmp") + "/bnlab_st_fuzz_XXXXXX";
    if (!mkdtemp(dir.data())) std::abort();
    path = dir + "/input.safetensors";
  }
  ~InputFile() {
    std::remove(path.c_str());
    rmdir(dir.c_str());
  }
};

volatile uint32_t sink;  // keeps the reads below from being optimized away

void touch(const void* p, size_t bytes) {
  uint32_t h = 0;
  const auto* b = static_cast<const uint8_t*>(p);
  for (size_t i = 0; i < bytes; ++i) h = h * 31 + b[i];
  sink = h;
}

void check_entries(const bnlab::SafetensorsFile& file) {
  for (const auto& [name, entry] : file.entries) {
    const int64_t count = bnlab::numel(entry.shape);
    if (entry.dtype == bnlab::DType::F32) {
      const float* values = file.f32(name, entry.shape);  // must not throw
      float sum = 0;
      for (int64_t i = 0; i < count; ++i) sum += values[i];  // alignment and bounds checked
      touch(&sum, sizeof sum);
      try {
        file.i64(name, entry.shape);
        std::abort();  // wrong dtype must be an Error
      } catch (const bnlab::Error&) {
      }
    } else {
      const std::vector<int64_t> values = file.i64(name, entry.shape);
      if (static_cast<int64_t>(values.size()) != count) std::abort();
      touch(values.data(), values.size() * sizeof(int64_t));
      try {
        file.f32(name, entry.shape);
        std::abort();
      } catch (const bnlab::Error&) {
      }
    }
    // A wrong shape must be an Error too.
    bnlab::Shape other = entry.shape;
    other.push_back(1);
    try {
      if (entry.dtype == bnlab::DType::F32) file.f32(name, other);
      else file.i64(name, other);
      std::abort();
    } catch (const bnlab::Error&) {
    }
  }
  try {
    file.f32("\x01 not a tensor name", {});
    std::abort();
  } catch (const bnlab::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const InputFile input;
  const std::string& path = input.path;
  std::remove(path.c_str());  // not truncated: ext4 would flush the rewritten file on close
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f || std::fwrite(data, 1, size, f) != size || std::fclose(f) != 0) std::abort();
  try {
    const bnlab::SafetensorsFile file = bnlab::read_safetensors(path);
    check_entries(file);
  } catch (const bnlab::Error&) {
  }
  return 0;
}
