// Image decoding (PNG of every color type we convert, 16-bit, interlaced; PGM P2 and P5) against
// files written by libpng's encoder and by hand; malformed files with their exact one-line
// messages; and the MNIST-style preprocessing: centering, inversion, aspect-preserving fit.
#include <gtest/gtest.h>
#include <png.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "bnlab/error.h"
#include "bnlab/image.h"

namespace bnlab {
namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

// ---- an independent encoder: libpng's writer ----

void append_bytes(png_structp png, png_bytep data, size_t n) {
  auto* out = static_cast<Bytes*>(png_get_io_ptr(png));
  out->insert(out->end(), data, data + n);
}
void flush_nothing(png_structp) {}

// raw: rows of w * channels samples, 16-bit samples big-endian.
Bytes encode_png(int w, int h, int color_type, int bit_depth, const Bytes& raw, bool interlaced = false) {
  Bytes out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  std::vector<png_bytep> rows(static_cast<size_t>(h));
  const size_t stride = raw.size() / static_cast<size_t>(h);
  for (int y = 0; y < h; ++y) rows[static_cast<size_t>(y)] = const_cast<png_bytep>(raw.data()) + static_cast<size_t>(y) * stride;
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return {};
  }
  png_set_write_fn(png, &out, append_bytes, flush_nothing);
  png_set_IHDR(png, info, static_cast<png_uint_32>(w), static_cast<png_uint_32>(h), bit_depth, color_type,
               interlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  png_write_image(png, rows.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return out;
}

uint32_t crc32_of(const uint8_t* p, size_t n) {
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
  }
  return ~c;
}

void put32(Bytes& b, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(v >> s));
}

void put_chunk(Bytes& b, const std::string& type, const Bytes& data) {
  put32(b, static_cast<uint32_t>(data.size()));
  const size_t type_at = b.size();
  for (char c : type) b.push_back(static_cast<uint8_t>(c));
  b.insert(b.end(), data.begin(), data.end());
  put32(b, crc32_of(b.data() + type_at, b.size() - type_at));
}

// A valid IHDR claiming w x h 8-bit gray, then a 2-byte IDAT and IEND: 59 bytes in all.
Bytes png_header_only(uint32_t w, uint32_t h) {
  Bytes b = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  Bytes ihdr;
  put32(ihdr, w);
  put32(ihdr, h);
  for (uint8_t v : {8, 0, 0, 0, 0}) ihdr.push_back(v);  // depth, gray, deflate, filter, no interlace
  put_chunk(b, "IHDR", ihdr);
  put_chunk(b, "IDAT", {0x78, 0x9c});
  put_chunk(b, "IEND", {});
  return b;
}

Bytes text(const std::string& s) { return Bytes(s.begin(), s.end()); }

std::string error_of(const Bytes& bytes, const std::string& name = "x.png") {
  try {
    decode_image(bytes, name);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// ---- decoding ----

TEST(Image, PngGrayRoundTrip) {
  Bytes raw;
  for (int i = 0; i < 5 * 3; ++i) raw.push_back(static_cast<uint8_t>(i * 17));
  const GrayImage g = decode_image(encode_png(5, 3, PNG_COLOR_TYPE_GRAY, 8, raw), "g.png");
  EXPECT_EQ(g.width, 5);
  EXPECT_EQ(g.height, 3);
  EXPECT_EQ(g.pixels, raw);
}

TEST(Image, PngInterlacedGrayRoundTrip) {
  Bytes raw;
  for (int i = 0; i < 13 * 11; ++i) raw.push_back(static_cast<uint8_t>(i * 31));
  const GrayImage g = decode_image(encode_png(13, 11, PNG_COLOR_TYPE_GRAY, 8, raw, true), "i.png");
  EXPECT_EQ(g.pixels, raw);
}

TEST(Image, PngRgbBecomesGrayAsPil) {
  const Bytes raw = {255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255, 10, 20, 30};
  const GrayImage g = decode_image(encode_png(5, 1, PNG_COLOR_TYPE_RGB, 8, raw), "rgb.png");
  // (299 R + 587 G + 114 B + 500) / 1000
  EXPECT_EQ(g.pixels, (Bytes{76, 150, 29, 255, 18}));
}

TEST(Image, PngRgbaTransparencyGoesBehindTheInk) {
  // Dark ink on a transparent background (what a canvas exports): the background becomes white.
  const Bytes dark = {0, 0, 0, 0, 0, 0, 0, 255, 0, 0, 0, 128, 200, 200, 200, 0};
  EXPECT_EQ(decode_image(encode_png(4, 1, PNG_COLOR_TYPE_RGBA, 8, dark), "a.png").pixels,
            (Bytes{255, 0, 127, 255}));
  // Light ink on a transparent background: black behind it.
  const Bytes light = {0, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 0};
  EXPECT_EQ(decode_image(encode_png(3, 1, PNG_COLOR_TYPE_RGBA, 8, light), "b.png").pixels, (Bytes{0, 255, 0}));
  // Gray + alpha takes the same path.
  const Bytes ga = {0, 0, 0, 255};
  EXPECT_EQ(decode_image(encode_png(2, 1, PNG_COLOR_TYPE_GRAY_ALPHA, 8, ga), "c.png").pixels, (Bytes{255, 0}));
}

TEST(Image, PngPaletteWithTransparencyIsExpanded) {
  Bytes out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  png_color palette[3] = {{0, 0, 0}, {255, 255, 255}, {255, 0, 0}};
  png_byte alpha[2] = {255, 0};  // entry 1 (white) fully transparent
  Bytes row = {0, 1, 2, 1};
  png_bytep rows[1] = {row.data()};
  ASSERT_EQ(setjmp(png_jmpbuf(png)), 0);
  png_set_write_fn(png, &out, append_bytes, flush_nothing);
  png_set_IHDR(png, info, 4, 1, 8, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_set_PLTE(png, info, palette, 3);
  png_set_tRNS(png, info, alpha, 2, nullptr);
  png_write_info(png, info);
  png_write_image(png, rows);
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  // Opaque black and red are dark ink, so the transparent pixels become white.
  EXPECT_EQ(decode_image(out, "p.png").pixels, (Bytes{0, 255, 76, 255}));
}

TEST(Image, Png16BitIsScaledToEightBits) {
  const Bytes raw = {0x00, 0x00, 0xff, 0xff, 0x80, 0x80, 0x64, 0x64};  // 0, 65535, 32896, 25700
  EXPECT_EQ(decode_image(encode_png(4, 1, PNG_COLOR_TYPE_GRAY, 16, raw), "d.png").pixels, (Bytes{0, 255, 128, 100}));
  const Bytes rgb16 = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  EXPECT_EQ(decode_image(encode_png(1, 1, PNG_COLOR_TYPE_RGB, 16, rgb16), "e.png").pixels, (Bytes{255}));
}

Bytes cat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

TEST(Image, PgmRawPlainAndSixteenBit) {
  const GrayImage p5 = decode_image(cat(text("P5\n# made by hand\n3 2\n255\n"), {0, 1, 2, 253, 254, 255}), "a.pgm");
  EXPECT_EQ(p5.width, 3);
  EXPECT_EQ(p5.height, 2);
  EXPECT_EQ(p5.pixels, (Bytes{0, 1, 2, 253, 254, 255}));
  // maxval 1000, two bytes per sample, big-endian: v * 255 / 1000 rounded.
  const GrayImage wide = decode_image(cat(text("P5 2 1 1000\n"), {0x03, 0xe8, 0x01, 0xf4}), "b.pgm");
  EXPECT_EQ(wide.pixels, (Bytes{255, 128}));
  const GrayImage p2 = decode_image(text("P2\n# plain\n2 2\n15\n0 15\n# mid\n5   10\n"), "c.pgm");
  EXPECT_EQ(p2.pixels, (Bytes{0, 255, 85, 170}));
}

TEST(Image, ReadsFilesByContentNotName) {
  const fs::path dir = fs::temp_directory_path() / ("bnlab_image_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const Bytes png = encode_png(2, 1, PNG_COLOR_TYPE_GRAY, 8, {7, 9});
  std::ofstream(dir / "really_a_png.pgm", std::ios::binary).write(reinterpret_cast<const char*>(png.data()), static_cast<std::streamsize>(png.size()));
  EXPECT_EQ(read_image((dir / "really_a_png.pgm").string()).pixels, (Bytes{7, 9}));
  const std::string missing = (dir / "missing.png").string();
  try {
    read_image(missing);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), missing + ": image: cannot open (No such file or directory)");
  }
  try {
    read_image(dir.string());
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), dir.string() + ": image: cannot read (is a directory)");
  }
  fs::remove_all(dir);
}

TEST(Image, BadFilesGiveOneLine) {
  const Bytes png = encode_png(20, 20, PNG_COLOR_TYPE_GRAY, 8, Bytes(400, 100));
  const Bytes half(png.begin(), png.begin() + static_cast<std::ptrdiff_t>(png.size() / 2));
  EXPECT_EQ(error_of(half), "x.png: image: truncated PNG (the file ends after " + std::to_string(half.size()) + " bytes)");
  const Bytes no_iend(png.begin(), png.end() - 12);  // the image data complete, IEND missing
  EXPECT_EQ(error_of(no_iend), "x.png: image: truncated PNG (the file ends after " + std::to_string(no_iend.size()) + " bytes)");
  EXPECT_EQ(error_of(Bytes(png.begin(), png.begin() + 4)), "x.png: image: truncated PNG (the file ends after 4 bytes)");
  EXPECT_EQ(error_of(text("hello, I am a text file\n")), "x.png: image: not a PNG or PGM image");
  EXPECT_EQ(error_of({}), "x.png: image: empty file");
  EXPECT_EQ(error_of(text("P5\n0 0\n255\n"), "z.pgm"), "z.pgm: image: zero size (0x0)");
  EXPECT_EQ(error_of(text("P2 3 0 255\n"), "z.pgm"), "z.pgm: image: zero size (3x0)");

  Bytes corrupt = png;
  corrupt[corrupt.size() / 2] ^= 0x55;  // inside IDAT: its CRC no longer matches
  EXPECT_EQ(error_of(corrupt).rfind("x.png: image: PNG: ", 0), 0u) << error_of(corrupt);
}

TEST(Image, HeadersAreCheckedBeforeAllocating) {
  EXPECT_EQ(error_of(png_header_only(100000, 100000)),
            "x.png: image: too large: 100000x100000 is more than 67108864 pixels");
  // 64 million pixels would be allowed, but not from a 59-byte file.
  EXPECT_EQ(error_of(png_header_only(8000, 8000)),
            "x.png: image: PNG: header claims 8000x8000 pixels, more than a file of 59 bytes can hold");
  EXPECT_EQ(error_of(png_header_only(0, 5)), "x.png: image: PNG: Invalid IHDR data (Image width is zero in IHDR)");
  // A header within the limits reaches the pixel data, which is not there.
  EXPECT_EQ(error_of(png_header_only(4, 4)).rfind("x.png: image: ", 0), 0u);
  EXPECT_EQ(error_of(text("P5 100000 100000 255\n"), "p.pgm"),
            "p.pgm: image: too large: 100000x100000 is more than 67108864 pixels");
  EXPECT_EQ(error_of(text("P5 4000 4000 255\nabc"), "p.pgm"),
            "p.pgm: image: truncated PGM (4000x4000 pixels need more than the 3 bytes left)");
  EXPECT_EQ(error_of(text("P2 2 2 255\n1 2 3"), "p.pgm"), "p.pgm: image: truncated PGM (3 of 4 pixels)");
  EXPECT_EQ(error_of(text("P2 1 1 255\n256\n"), "p.pgm"), "p.pgm: image: PGM: pixel 0 is 256, above maxval 255");
  EXPECT_EQ(error_of(text("P5 1 1 0\n\x01"), "p.pgm"), "p.pgm: image: PGM: maxval 0 is outside 1..65535");
  EXPECT_EQ(error_of(text("P5 1 x 255\n"), "p.pgm"), "p.pgm: image: PGM: height is not a number");
  EXPECT_EQ(error_of(text("P5 1 1"), "p.pgm"), "p.pgm: image: truncated PGM (the file ends before the maxval)");
  EXPECT_EQ(error_of(text("P5 99999999999 1 255\n"), "p.pgm"), "p.pgm: image: PGM: width is too large");
}

// ---- preprocessing ----

GrayImage canvas(int64_t w, int64_t h, uint8_t background) {
  return {w, h, Bytes(static_cast<size_t>(w * h), background)};
}

void fill_disk(GrayImage& g, double cx, double cy, double r, uint8_t value) {
  for (int64_t y = 0; y < g.height; ++y)
    for (int64_t x = 0; x < g.width; ++x)
      if (std::hypot(static_cast<double>(x) - cx, static_cast<double>(y) - cy) <= r) g.pixels[static_cast<size_t>(y * g.width + x)] = value;
}

void fill_rect(GrayImage& g, int64_t x0, int64_t y0, int64_t w, int64_t h, uint8_t value) {
  for (int64_t y = y0; y < y0 + h; ++y)
    for (int64_t x = x0; x < x0 + w; ++x) g.pixels[static_cast<size_t>(y * g.width + x)] = value;
}

struct Ink {
  double cx = 0, cy = 0;
  int64_t x0 = 1 << 30, y0 = 1 << 30, x1 = -1, y1 = -1;
};

Ink measure(const GrayImage& g) {
  Ink ink;
  double mass = 0;
  for (int64_t y = 0; y < g.height; ++y) {
    for (int64_t x = 0; x < g.width; ++x) {
      const double v = g.pixels[static_cast<size_t>(y * g.width + x)];
      if (v == 0) continue;
      mass += v, ink.cx += v * static_cast<double>(x), ink.cy += v * static_cast<double>(y);
      ink.x0 = std::min(ink.x0, x), ink.x1 = std::max(ink.x1, x);
      ink.y0 = std::min(ink.y0, y), ink.y1 = std::max(ink.y1, y);
    }
  }
  ink.cx /= mass, ink.cy /= mass;
  return ink;
}

TEST(Digit, AnOffCenterBlobEndsCentered) {
  GrayImage g = canvas(100, 80, 0);
  fill_disk(g, 25, 55, 12, 255);
  const Digit d = center_digit(g);
  EXPECT_FALSE(d.inverted);
  EXPECT_FALSE(d.blank);
  ASSERT_EQ(d.image.width, 28);
  ASSERT_EQ(d.image.height, 28);
  const Ink ink = measure(d.image);
  EXPECT_NEAR(ink.cx, 14, 0.5);
  EXPECT_NEAR(ink.cy, 14, 0.5);
  EXPECT_EQ(ink.x1 - ink.x0 + 1, 20);  // the disk's 25-pixel box fitted to 20
  EXPECT_EQ(ink.y1 - ink.y0 + 1, 20);
  EXPECT_EQ(d.image.pixels[14 * 28 + 14], 255);
}

TEST(Digit, ALightBackgroundIsInverted) {
  GrayImage g = canvas(50, 50, 255);
  fill_disk(g, 25, 25, 10, 0);
  const Digit d = center_digit(g);
  EXPECT_TRUE(d.inverted);
  EXPECT_EQ(d.image.pixels[0], 0);
  EXPECT_EQ(d.image.pixels[27 * 28 + 27], 0);
  EXPECT_EQ(d.image.pixels[14 * 28 + 14], 255);
}

TEST(Digit, GrayPaperAndPencilGetFullContrast) {
  GrayImage g = canvas(40, 40, 200);
  fill_rect(g, 10, 10, 20, 20, 120);
  const Digit d = center_digit(g);
  EXPECT_TRUE(d.inverted);
  const Ink ink = measure(d.image);
  EXPECT_EQ(ink.x1 - ink.x0 + 1, 20);
  EXPECT_EQ(d.image.pixels[0], 0);
  EXPECT_EQ(d.image.pixels[14 * 28 + 14], 255);
}

TEST(Digit, NonSquareInputsFitTwentyPixelsKeepingTheirAspect) {
  GrayImage tall = canvas(60, 80, 0);  // a 10x40 bar: becomes 5x20
  fill_rect(tall, 5, 30, 10, 40, 255);
  Ink ink = measure(center_digit(tall).image);
  EXPECT_EQ(ink.x1 - ink.x0 + 1, 5);
  EXPECT_EQ(ink.y1 - ink.y0 + 1, 20);
  EXPECT_NEAR(ink.cx, 14, 0.5);
  EXPECT_NEAR(ink.cy, 14, 0.5);

  GrayImage wide = canvas(90, 33, 230);  // a 60x15 bar on light paper: becomes 20x5
  fill_rect(wide, 20, 9, 60, 15, 30);
  ink = measure(center_digit(wide).image);
  EXPECT_EQ(ink.x1 - ink.x0 + 1, 20);
  EXPECT_EQ(ink.y1 - ink.y0 + 1, 5);

  GrayImage small = canvas(8, 8, 0);  // a 2x4 stroke is enlarged to 10x20
  fill_rect(small, 3, 2, 2, 4, 255);
  ink = measure(center_digit(small).image);
  EXPECT_EQ(ink.x1 - ink.x0 + 1, 10);
  EXPECT_EQ(ink.y1 - ink.y0 + 1, 20);
}

TEST(Digit, AreaAveragingKeepsTheMeanInk) {
  // A 40x40 checkerboard of 1-pixel squares shrinks by 2: every output pixel averages to half.
  GrayImage g = canvas(40, 40, 0);
  for (int64_t y = 0; y < 40; ++y)
    for (int64_t x = 0; x < 40; ++x) g.pixels[static_cast<size_t>(y * 40 + x)] = (x + y) % 2 ? 255 : 0;
  fill_rect(g, 0, 0, 40, 1, 0);  // a dark border so that the background is black
  fill_rect(g, 0, 39, 40, 1, 0);
  fill_rect(g, 0, 0, 1, 40, 0);
  fill_rect(g, 39, 0, 1, 40, 0);
  const Digit d = center_digit(g);
  const Ink ink = measure(d.image);
  // The inside 38x38 maps to 20x20, values near 128 (the edges mix less).
  EXPECT_EQ(ink.x1 - ink.x0 + 1, 20);
  EXPECT_NEAR(d.image.pixels[14 * 28 + 14], 128, 20);
}

TEST(Digit, BlankImagesAreFlagged) {
  EXPECT_TRUE(center_digit(canvas(30, 30, 255)).blank);
  EXPECT_TRUE(center_digit(canvas(30, 30, 0)).blank);
  GrayImage faint = canvas(30, 30, 100);
  fill_disk(faint, 15, 15, 5, 110);  // 10 levels of contrast: noise, not ink
  EXPECT_TRUE(center_digit(faint).blank);
}

TEST(Digit, NormalizationMatchesTraining) {
  const GrayImage g{2, 1, {0, 255}};
  float out[2];
  normalize_digit(out, g);
  EXPECT_FLOAT_EQ(out[0], (0.0f - 0.1307f) / 0.3081f);
  EXPECT_FLOAT_EQ(out[1], (1.0f - 0.1307f) / 0.3081f);
}

}  // namespace
}  // namespace bnlab
