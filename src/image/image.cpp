// Decoding digit images to 8-bit gray: PNG through libpng, PGM (netpbm's P2 and P5) by hand.
//
// PNG (https://www.w3.org/TR/png/): libpng's classic API expands palettes, low bit depths and
// tRNS to 8-bit gray/RGB with or without alpha and scales 16-bit samples to 8 bits; the gray
// conversion and alpha compositing below are ours. libpng reports errors by longjmp: each call
// into it runs inside run_png_step(), whose frame holds no C++ object, so the jump skips no
// destructor; the error callback copies the message into a fixed buffer and never throws. The
// header is checked (pixel count, and the bytes it implies against what the file's deflate data
// can expand to) before anything is allocated for the pixels.
//
// PGM (https://netpbm.sourceforge.net/doc/pgm.html): "P5" or "P2", width, height, maxval
// separated by whitespace and '#' comments, one whitespace character, then the raster: bytes
// (2 big-endian bytes when maxval > 255) for P5, decimal numbers for P2.
#include <png.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "bnlab/error.h"
#include "bnlab/image.h"

namespace bnlab {
namespace {

constexpr int64_t kMaxFileBytes = int64_t{1} << 30;
constexpr int64_t kMaxDeflateRatio = 1032;  // deflate cannot expand data more than this

[[noreturn]] void bad(const std::string& name, const std::string& what) { fail(name, "image", what); }

std::string dims(int64_t w, int64_t h) { return std::to_string(w) + "x" + std::to_string(h); }

void check_size(const std::string& name, int64_t w, int64_t h) {
  if (w <= 0 || h <= 0) bad(name, "zero size (" + dims(w, h) + ")");
  if (w > kMaxImagePixels / h) {
    bad(name, "too large: " + dims(w, h) + " is more than " + std::to_string(kMaxImagePixels) + " pixels");
  }
}

// ---- PNG ----

struct PngSource {
  const uint8_t* data = nullptr;
  size_t size = 0, pos = 0;
  bool truncated = false;
  char message[200] = {};
  char warning[200] = {};  // the last warning: libpng explains some errors only there
  // Filled by the steps:
  png_uint_32 width = 0, height = 0;
  int bit_depth = 0, color_type = 0, channels = 0;
  size_t rowbytes = 0;
  png_bytepp rows = nullptr;
};

void png_read_bytes(png_structp png, png_bytep out, size_t n) {
  auto* src = static_cast<PngSource*>(png_get_io_ptr(png));
  if (n > src->size - src->pos) {
    src->truncated = true;
    png_error(png, "truncated");
  }
  std::memcpy(out, src->data + src->pos, n);
  src->pos += n;
}

void png_on_error(png_structp png, png_const_charp message) {
  auto* src = static_cast<PngSource*>(png_get_error_ptr(png));
  std::snprintf(src->message, sizeof src->message, "%s", message);
  png_longjmp(png, 1);
}

// Kept, not printed: libpng warns about harmless things (ancillary chunks) but also says what is
// wrong before some errors ("Image width is zero in IHDR", then "Invalid IHDR data").
void png_on_warning(png_structp png, png_const_charp message) {
  auto* src = static_cast<PngSource*>(png_get_error_ptr(png));
  std::snprintf(src->warning, sizeof src->warning, "%s", message);
}

using PngStep = void (*)(png_structp, png_infop, PngSource*);

// The only setjmp: returns false when libpng reported an error inside `step`.
bool run_png_step(png_structp png, png_infop info, PngStep step, PngSource* src) {
  if (setjmp(png_jmpbuf(png))) return false;
  step(png, info, src);
  return true;
}

void png_step_header(png_structp png, png_infop info, PngSource* src) {
  png_read_info(png, info);
  src->width = png_get_image_width(png, info);
  src->height = png_get_image_height(png, info);
  src->bit_depth = png_get_bit_depth(png, info);
  src->color_type = png_get_color_type(png, info);
  src->channels = png_get_channels(png, info);
}

void png_step_transforms(png_structp png, png_infop info, PngSource* src) {
  png_set_expand(png);    // palette -> RGB, gray of 1/2/4 bits -> 8, tRNS -> alpha channel
  png_set_scale_16(png);  // 16 -> 8 bits, rounded
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  src->channels = png_get_channels(png, info);
  src->rowbytes = png_get_rowbytes(png, info);
}

void png_step_pixels(png_structp png, png_infop, PngSource* src) {
  png_read_image(png, src->rows);
  png_read_end(png, nullptr);  // checks the chunks after the image data (CRCs, IEND)
}

class PngReader {
 public:
  explicit PngReader(PngSource* src) {
    png_ = png_create_read_struct(PNG_LIBPNG_VER_STRING, src, png_on_error, png_on_warning);
    if (png_) info_ = png_create_info_struct(png_);
    if (png_) png_set_read_fn(png_, src, png_read_bytes);
  }
  ~PngReader() { png_destroy_read_struct(&png_, info_ ? &info_ : nullptr, nullptr); }
  PngReader(const PngReader&) = delete;
  PngReader& operator=(const PngReader&) = delete;
  bool ok() const { return png_ && info_; }
  bool run(PngStep step, PngSource* src) { return run_png_step(png_, info_, step, src); }

 private:
  png_structp png_ = nullptr;
  png_infop info_ = nullptr;
};

[[noreturn]] void png_failed(const std::string& name, const PngSource& src) {
  if (src.truncated) bad(name, "truncated PNG (the file ends after " + std::to_string(src.size) + " bytes)");
  bad(name, std::string("PNG: ") + src.message + (src.warning[0] ? std::string(" (") + src.warning + ")" : ""));
}

// Gray from gray/GA/RGB/RGBA rows of 8-bit samples; transparency composited onto the background
// that contrasts with the ink: white behind dark ink, black behind light ink.
GrayImage to_gray(const std::vector<uint8_t>& rgba, int64_t w, int64_t h, int channels) {
  GrayImage out{w, h, std::vector<uint8_t>(static_cast<size_t>(w * h))};
  std::vector<uint8_t> alpha;
  const bool has_alpha = channels == 2 || channels == 4;
  if (has_alpha) alpha.resize(out.pixels.size());
  for (size_t i = 0; i < out.pixels.size(); ++i) {
    const uint8_t* p = rgba.data() + i * static_cast<size_t>(channels);
    out.pixels[i] = channels >= 3 ? static_cast<uint8_t>((299 * p[0] + 587 * p[1] + 114 * p[2] + 500) / 1000)
                                  : p[0];
    if (has_alpha) alpha[i] = p[channels - 1];
  }
  if (!has_alpha) return out;
  uint64_t weighted = 0, weight = 0;
  for (size_t i = 0; i < out.pixels.size(); ++i) {
    weighted += uint64_t{out.pixels[i]} * alpha[i];
    weight += alpha[i];
  }
  const uint32_t background = weighted < 128 * weight ? 255 : 0;
  for (size_t i = 0; i < out.pixels.size(); ++i) {
    const uint32_t a = alpha[i];
    out.pixels[i] = static_cast<uint8_t>((out.pixels[i] * a + background * (255 - a) + 127) / 255);
  }
  return out;
}

GrayImage decode_png(std::span<const uint8_t> bytes, const std::string& name) {
  PngSource src;
  src.data = bytes.data();
  src.size = bytes.size();
  PngReader reader(&src);
  if (!reader.ok()) bad(name, "PNG: cannot create the decoder");
  if (!reader.run(png_step_header, &src)) png_failed(name, src);
  const int64_t w = src.width, h = src.height;
  check_size(name, w, h);
  // The raw scanlines the header promises must fit in what the file's bytes can inflate to.
  const int64_t min_raw = h * ((w * src.bit_depth * src.channels + 7) / 8);
  if (min_raw > kMaxDeflateRatio * static_cast<int64_t>(bytes.size())) {
    bad(name, "PNG: header claims " + dims(w, h) + " pixels, more than a file of " +
                  std::to_string(bytes.size()) + " bytes can hold");
  }
  if (!reader.run(png_step_transforms, &src)) png_failed(name, src);
  std::vector<uint8_t> data(src.rowbytes * static_cast<size_t>(h));
  std::vector<png_bytep> rows(static_cast<size_t>(h));
  for (int64_t y = 0; y < h; ++y) rows[static_cast<size_t>(y)] = data.data() + static_cast<size_t>(y) * src.rowbytes;
  src.rows = rows.data();
  if (!reader.run(png_step_pixels, &src)) png_failed(name, src);
  return to_gray(data, w, h, src.channels);
}

// ---- PGM ----

class PgmParser {
 public:
  PgmParser(std::span<const uint8_t> bytes, const std::string& name) : b_(bytes), name_(name) {}

  GrayImage parse() {
    const bool plain = b_[1] == '2';
    pos_ = 2;
    const int64_t w = number("width"), h = number("height");
    check_size(name_, w, h);
    const int64_t maxval = number("maxval");
    if (maxval < 1 || maxval > 65535) bad(name_, "PGM: maxval " + std::to_string(maxval) + " is outside 1..65535");
    if (pos_ >= b_.size() || !is_space(b_[pos_])) bad(name_, "PGM: no whitespace after maxval");
    ++pos_;
    const int64_t count = w * h, remaining = static_cast<int64_t>(b_.size() - pos_);
    const int64_t sample_bytes = maxval > 255 ? 2 : 1;
    // Each pixel takes at least sample_bytes (P5) or one digit (P2): bound before allocating.
    if (count * (plain ? 1 : sample_bytes) > remaining) {
      bad(name_, "truncated PGM (" + dims(w, h) + " pixels need more than the " + std::to_string(remaining) +
                     " bytes left)");
    }
    GrayImage image{w, h, std::vector<uint8_t>(static_cast<size_t>(count))};
    for (int64_t i = 0; i < count; ++i) {
      int64_t v;
      if (plain) {
        v = number("pixel", i, count);
      } else {
        const uint8_t* p = b_.data() + pos_ + i * sample_bytes;
        v = sample_bytes == 2 ? p[0] * 256 + p[1] : p[0];
      }
      if (v > maxval) bad(name_, "PGM: pixel " + std::to_string(i) + " is " + std::to_string(v) + ", above maxval " + std::to_string(maxval));
      image.pixels[static_cast<size_t>(i)] = static_cast<uint8_t>((v * 255 + maxval / 2) / maxval);
    }
    return image;
  }

 private:
  static bool is_space(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

  // The next decimal number after whitespace and comments (pixel `index` of `count`, if a pixel).
  int64_t number(const char* what, int64_t index = -1, int64_t count = 0) {
    while (pos_ < b_.size() && (is_space(b_[pos_]) || b_[pos_] == '#')) {
      if (b_[pos_] == '#') {
        while (pos_ < b_.size() && b_[pos_] != '\n') ++pos_;
      } else {
        ++pos_;
      }
    }
    if (pos_ >= b_.size()) {
      bad(name_, index < 0 ? std::string("truncated PGM (the file ends before the ") + what + ")"
                           : "truncated PGM (" + std::to_string(index) + " of " + std::to_string(count) + " pixels)");
    }
    const char* first = reinterpret_cast<const char*>(b_.data() + pos_);
    const char* last = reinterpret_cast<const char*>(b_.data() + b_.size());
    uint32_t v = 0;
    const auto [end, ec] = std::from_chars(first, last, v);
    if (ec == std::errc::result_out_of_range) bad(name_, std::string("PGM: ") + what + " is too large");
    if (ec != std::errc() || (end != last && !is_space(static_cast<uint8_t>(*end)) && *end != '#')) {
      bad(name_, std::string("PGM: ") + what + " is not a number");
    }
    pos_ += static_cast<size_t>(end - first);
    return v;
  }

  std::span<const uint8_t> b_;
  const std::string& name_;
  size_t pos_ = 0;
};

}  // namespace

GrayImage decode_image(std::span<const uint8_t> bytes, const std::string& name) {
  if (bytes.empty()) bad(name, "empty file");
  const size_t sig = std::min<size_t>(bytes.size(), 8);
  if (png_sig_cmp(bytes.data(), 0, sig) == 0) return decode_png(bytes, name);
  if (bytes.size() >= 2 && bytes[0] == 'P' && (bytes[1] == '2' || bytes[1] == '5')) {
    return PgmParser(bytes, name).parse();
  }
  bad(name, "not a PNG or PGM image");
}

GrayImage read_image(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) bad(path, "cannot read (is a directory)");
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) bad(path, std::string("cannot open (") + std::strerror(errno) + ")");
  std::vector<uint8_t> bytes;
  std::vector<uint8_t> chunk(1 << 16);
  size_t n;
  while ((n = std::fread(chunk.data(), 1, chunk.size(), f)) > 0) {
    bytes.insert(bytes.end(), chunk.begin(), chunk.begin() + static_cast<std::ptrdiff_t>(n));
    if (static_cast<int64_t>(bytes.size()) > kMaxFileBytes) {
      std::fclose(f);
      bad(path, "larger than " + std::to_string(kMaxFileBytes) + " bytes");
    }
  }
  const bool error = std::ferror(f);
  std::fclose(f);
  if (error) bad(path, "cannot read");
  return decode_image(bytes, path);
}

}  // namespace bnlab
