// The user's own digit images: decoding PNG and PGM files to 8-bit grayscale, and the MNIST-style
// preprocessing that makes a photo or a drawing look like an MNIST test image.
//
//   GrayImage image = read_image("seven.png");   // Error "seven.png: image: <problem>"
//   Digit digit = center_digit(image);            // 28x28, light ink on black, centered
//   std::vector<float> x(28 * 28);
//   normalize_digit(x.data(), digit.image);       // (x/255 - 0.1307) / 0.3081, as training
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "bnlab/input_scale.h"

namespace bnlab {

// Row-major 8-bit grayscale, 0 black .. 255 white.
struct GrayImage {
  int64_t width = 0, height = 0;
  std::vector<uint8_t> pixels;  // (height, width)
};

// The most pixels an image may have; checked (and the header checked against the file's size)
// before anything is allocated.
constexpr int64_t kMaxImagePixels = int64_t{1} << 26;

// Reads a PNG (any color type and bit depth, interlaced or not) or a PGM (P2 plain or P5 raw,
// maxval up to 65535), recognized by content, not by name. Color becomes gray as PIL's
// convert("L"): (299 R + 587 G + 114 B) / 1000; 16-bit samples are scaled to 8 bits; transparent
// pixels are composited onto white behind dark ink and onto black behind light ink.
// Problems throw Error "<path>: image: <problem>".
GrayImage read_image(const std::string& path);
// The same from bytes in memory; `name` stands for the file in messages.
GrayImage decode_image(std::span<const uint8_t> bytes, const std::string& name);

// MNIST's own recipe (LeCun et al.): the digit's bounding box scaled to fit fit x fit pixels with
// its aspect ratio kept, then placed in a size x size image with its center of mass at the
// center.
struct DigitOptions {
  int64_t size = 28;
  int64_t fit = 20;
  InputNormalization input;  // default: standardized with MNIST's training pixels' mean and std
};

struct Digit {
  GrayImage image;        // size x size, light ink on a black background, as MNIST
  bool inverted = false;  // the input had a light background and was inverted
  bool blank = false;     // no ink was found; image is all black
};

// Steps, in order:
//  1. invert if the mean of the border pixels is above 127.5 (a light background);
//  2. contrast: the border's median becomes 0 and the brightest pixel 255 (a gray paper or a
//     pencil stroke look like MNIST's black background and white ink);
//  3. crop to the bounding box of the ink (pixels above 10% of full contrast);
//  4. scale the box to fit into fit x fit by area averaging (each output pixel is the mean of
//     the input area it covers, with fractional edges), keeping the aspect ratio;
//  5. place it in size x size so that its center of mass lies at pixel (size/2, size/2),
//     rounded to whole pixels; ink falling outside is cut off.
Digit center_digit(const GrayImage& image, const DigitOptions& options = {});

// out (digit.height * digit.width) = options.input(pixel), as training feeds it.
void normalize_digit(float* out, const GrayImage& digit, const DigitOptions& options = {});

}  // namespace bnlab
