// libFuzzer target for the IDX reader (src/data/idx.cpp), which takes a path: each input is
// written three ways and read as images and as labels:
//   raw bytes as a plain file      -> header, size and trailing-byte checks;
//   the same bytes gzip-compressed -> the gzip path with arbitrary decompressed content
//                                     (and a consistent trailer);
//   raw bytes named .gz            -> the gzip container itself: headers, trailers, corruption.
// Only bnlab::Error may escape the reader; anything else (another exception, a crash, a leak, a
// sanitizer report) is a bug.
#include <unistd.h>
#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "bnlab/data.h"
#include "bnlab/error.h"

namespace {

// One private directory ($TMPDIR, else /tmp) for the three files, removed at exit.
struct Paths {
  std::string dir, raw, gzipped, raw_gz;
  Paths() {
    const char* tmp = std::getenv("TMPDIR");
    dir = std::string(tmp && *tmp ? tmp : "/tmp") + "/bnlab_idx_fuzz_XXXXXX";
    if (!mkdtemp(dir.data())) std::abort();
    raw = dir + "/input.idx";
    gzipped = dir + "/input.idx.gz";
    raw_gz = dir + "/raw.gz";
  }
  ~Paths() {
    for (const std::string* p : {&raw, &gzipped, &raw_gz}) std::remove(p->c_str());
    rmdir(dir.c_str());
  }
};

// Files are removed, not truncated, before each write: ext4 flushes a truncated-and-rewritten
// file on close (auto_da_alloc), which made every input cost milliseconds.
void write_raw(const std::string& path, const uint8_t* data, size_t size) {
  std::remove(path.c_str());
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f || std::fwrite(data, 1, size, f) != size || std::fclose(f) != 0) std::abort();
}

void write_gzip(const std::string& path, const uint8_t* data, size_t size) {
  std::remove(path.c_str());
  gzFile f = gzopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size > 0 && gzwrite(f, data, static_cast<unsigned>(size)) != static_cast<int>(size)) std::abort();
  if (gzclose(f) != Z_OK) std::abort();
}

void read_both(const std::string& path) {
  try {
    const bnlab::IdxImages images = bnlab::read_idx_images(path);
    // What callers rely on: the pixels are exactly count x rows x cols.
    if (images.count <= 0 || images.rows <= 0 || images.cols <= 0 ||
        static_cast<int64_t>(images.pixels.size()) != images.count * images.rows * images.cols) {
      std::abort();
    }
  } catch (const bnlab::Error&) {
  }
  try {
    const std::vector<uint8_t> labels = bnlab::read_idx_labels(path);
    if (labels.empty()) std::abort();
  } catch (const bnlab::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Paths paths;
  write_raw(paths.raw, data, size);
  read_both(paths.raw);
  write_gzip(paths.gzipped, data, size);
  read_both(paths.gzipped);
  write_raw(paths.raw_gz, data, size);
  read_both(paths.raw_gz);
  return 0;
}
