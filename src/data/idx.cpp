// IDX reader (MNIST's format): big-endian header "0 0 <type 0x08=ubyte> <ndim>", ndim u32 sizes,
// then the bytes. Gzip files are read through zlib. Nothing is allocated from a size the file has
// not been shown to hold: raw files are checked against their length on disk, gzip streams
// against the length recorded in the gzip trailer, and their data is read in bounded chunks.
#include <zlib.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "bnlab/data.h"
#include "bnlab/error.h"

namespace bnlab {
namespace {

constexpr uint32_t kUbyte = 0x08;
constexpr int64_t kMaxDeflateRatio = 1032;  // deflate cannot expand data more than this
constexpr size_t kChunk = 1 << 20;

bool has_gz_suffix(const std::string& path) {
  return path.size() > 3 && path.compare(path.size() - 3, 3, ".gz") == 0;
}

// A byte stream over a raw or gzip file that knows an upper bound of its decompressed size.
class ByteStream {
 public:
  explicit ByteStream(const std::string& path) : path_(path) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(path, ec);
    if (ec) fail(path, "", "cannot open (" + ec.message() + ")");
    file_size_ = static_cast<int64_t>(size);
    gzipped_ = has_gz_suffix(path);
    if (gzipped_) {
      bound_ = read_gzip_isize_bound();
      gz_ = gzopen(path.c_str(), "rb");
      if (!gz_) fail(path, "", "cannot open");
    } else {
      bound_ = file_size_;
      raw_ = std::fopen(path.c_str(), "rb");
      if (!raw_) fail(path, "", "cannot open");
    }
  }
  ~ByteStream() {
    if (gz_) gzclose(gz_);
    if (raw_) std::fclose(raw_);
  }
  ByteStream(const ByteStream&) = delete;
  ByteStream& operator=(const ByteStream&) = delete;

  // Reads up to n bytes; returns how many were read (fewer only at the end of the data).
  int64_t read(uint8_t* out, int64_t n) {
    int64_t done = 0;
    while (done < n) {
      const int64_t want = std::min<int64_t>(n - done, static_cast<int64_t>(kChunk));
      int64_t got;
      if (gzipped_) {
        got = gzread(gz_, out + done, static_cast<unsigned>(want));
        if (got < 0) {
          int code = 0;
          fail(path_, "gzip", std::string("corrupt stream (") + gzerror(gz_, &code) + ")");
        }
      } else {
        got = static_cast<int64_t>(std::fread(out + done, 1, static_cast<size_t>(want), raw_));
      }
      if (got == 0) break;
      done += got;
    }
    return done;
  }

  // The most bytes the stream can yield: the file size, or for gzip the smaller of the
  // trailer's length (which is modulo 2^32) extended by the deflate ratio and the ratio bound.
  int64_t bound() const { return bound_; }
  bool gzipped() const { return gzipped_; }
  int64_t gzip_isize() const { return isize_; }
  const std::string& path() const { return path_; }

 private:
  int64_t read_gzip_isize_bound() {
    if (file_size_ < 18) fail(path_, "gzip", "file too short for a gzip stream");
    std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path_.c_str(), "rb"), std::fclose);
    if (!f) fail(path_, "", "cannot open");
    std::array<unsigned char, 4> tail{};
    if (std::fseek(f.get(), -4, SEEK_END) != 0 || std::fread(tail.data(), 1, 4, f.get()) != 4) {
      fail(path_, "gzip", "cannot read the trailer");
    }
    isize_ = static_cast<int64_t>(tail[0]) | static_cast<int64_t>(tail[1]) << 8 |
             static_cast<int64_t>(tail[2]) << 16 | static_cast<int64_t>(tail[3]) << 24;
    return file_size_ * kMaxDeflateRatio;
  }

  std::string path_;
  int64_t file_size_ = 0, bound_ = 0, isize_ = -1;
  bool gzipped_ = false;
  gzFile gz_ = nullptr;
  FILE* raw_ = nullptr;
};

uint32_t big_endian(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 |
         static_cast<uint32_t>(p[2]) << 8 | p[3];
}

// Reads header and data of an IDX file of `ndim` dimensions; returns the sizes and fills data.
std::vector<int64_t> read_idx(const std::string& path, uint32_t ndim, std::vector<uint8_t>& data) {
  ByteStream in(path);
  std::array<uint8_t, 4 + 4 * 3> header{};
  const int64_t header_size = 4 + 4 * static_cast<int64_t>(ndim);
  if (in.read(header.data(), 4) != 4) fail(path, "magic", "truncated: the file ends inside the magic number");
  const uint32_t magic = big_endian(header.data());
  const uint32_t expected = kUbyte << 8 | ndim;
  if (magic != expected) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "wrong magic number 0x%08x (expected 0x%08x for a %u-d ubyte file)",
                  magic, expected, ndim);
    fail(path, "magic", buf);
  }
  if (in.read(header.data() + 4, header_size - 4) != header_size - 4) {
    fail(path, "header", "truncated: the file ends inside the " + std::to_string(header_size) + "-byte header");
  }
  std::vector<int64_t> dims;
  std::string dims_text;
  int64_t payload = 1;
  bool overflow = false;
  for (uint32_t d = 0; d < ndim; ++d) {
    const int64_t size = big_endian(header.data() + 4 + 4 * d);
    dims.push_back(size);
    if (d) dims_text.push_back('x');
    dims_text.append(std::to_string(size));
    overflow = overflow || __builtin_mul_overflow(payload, size, &payload);
  }
  if (overflow) fail(path, "dimensions", "sizes " + dims_text + " overflow");
  if (dims[0] == 0) fail(path, "count", "the file holds no items");
  // Compare what the header promises with what the file holds before allocating anything.
  if (!in.gzipped() && header_size + payload != in.bound()) {
    const int64_t have = in.bound() - header_size;
    fail(path, "size", "header promises " + std::to_string(payload) + " data bytes (" + dims_text +
                           ") but the file has " + std::to_string(have) +
                           (have < payload ? " (truncated)" : " (trailing bytes)"));
  }
  if (in.gzipped() && ((header_size + payload) & 0xffffffff) != in.gzip_isize()) {
    fail(path, "size", "header promises " + std::to_string(payload) + " data bytes (" + dims_text +
                           ") but the gzip stream holds " + std::to_string(in.gzip_isize() - header_size) +
                           " (modulo 2^32)");
  }
  if (payload > in.bound()) {
    fail(path, "dimensions", "sizes " + dims_text + " promise more data than the file can hold");
  }
  // Grow as data actually arrives, so a lying header cannot make us allocate.
  data.clear();
  int64_t have = 0;
  while (have < payload) {
    const int64_t step = std::min<int64_t>(payload - have, static_cast<int64_t>(kChunk) * 16);
    data.resize(static_cast<size_t>(have + step));
    const int64_t got = in.read(data.data() + have, step);
    have += got;
    if (got < step) {
      fail(path, "size", "truncated: header promises " + std::to_string(payload) +
                             " data bytes but the data ends after " + std::to_string(have));
    }
  }
  uint8_t extra = 0;
  if (in.read(&extra, 1) != 0) fail(path, "size", "trailing bytes after the data the header describes");
  return dims;
}

}  // namespace

IdxImages read_idx_images(const std::string& path) {
  IdxImages images;
  const std::vector<int64_t> dims = read_idx(path, 3, images.pixels);
  images.count = dims[0];
  images.rows = dims[1];
  images.cols = dims[2];
  if (images.rows == 0 || images.cols == 0) fail(path, "dimensions", "images of zero size");
  return images;
}

std::vector<uint8_t> read_idx_labels(const std::string& path) {
  std::vector<uint8_t> labels;
  read_idx(path, 1, labels);
  return labels;
}

}  // namespace bnlab
