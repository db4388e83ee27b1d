// MNIST-style preprocessing of a user's digit image, after the recipe MNIST itself was made with
// (LeCun, Cortes, Burges, http://yann.lecun.com/exdb/mnist/): "the images were size normalized
// to fit in a 20x20 pixel box while preserving their aspect ratio ... and centered in a 28x28
// image by computing the center of mass of the pixels, and translating the image so as to
// position this point at the center of the 28x28 field". bnlab first makes the input look like
// NIST's scans: light ink on a black background, full contrast.
//
// Resampling is area averaging: output pixel k of a row covers source interval
// [k * in/out, (k+1) * in/out), and takes the mean of the source pixels over it, each weighted by
// its overlap. Done per axis (a box filter is separable), it anti-aliases when shrinking, as MNIST
// did, and repeats pixels (with mixed edges) when enlarging.
#include <algorithm>
#include <array>
#include <cmath>

#include "bnlab/error.h"
#include "bnlab/image.h"

namespace bnlab {
namespace {

constexpr double kLightBackground = 127.5;  // border mean above this: dark ink on light paper
constexpr int kMinContrast = 24;            // ink less than this above the background: blank
constexpr double kInkThreshold = 0.1;       // of full contrast: what counts for the bounding box

// 1-D area averaging: out (out_n values, stride out_stride) from in (in_n values, in_stride).
void resample_axis(double* out, int64_t out_stride, int64_t out_n, const double* in, int64_t in_stride,
                   int64_t in_n) {
  const double step = static_cast<double>(in_n) / static_cast<double>(out_n);
  for (int64_t k = 0; k < out_n; ++k) {
    const double a = static_cast<double>(k) * step, b = static_cast<double>(k + 1) * step;
    double sum = 0;
    const int64_t last = std::min(in_n, static_cast<int64_t>(std::ceil(b)));
    for (int64_t p = static_cast<int64_t>(a); p < last; ++p) {
      const double overlap = std::min(b, static_cast<double>(p + 1)) - std::max(a, static_cast<double>(p));
      if (overlap > 0) sum += overlap * in[p * in_stride];
    }
    out[k * out_stride] = sum / step;
  }
}

uint8_t median(const std::array<int64_t, 256>& histogram, int64_t count) {
  int64_t seen = 0;
  for (int v = 0; v < 256; ++v) {
    seen += histogram[static_cast<size_t>(v)];
    if (2 * seen >= count) return static_cast<uint8_t>(v);
  }
  return 255;
}

}  // namespace

Digit center_digit(const GrayImage& image, const DigitOptions& options) {
  const int64_t w = image.width, h = image.height, size = options.size, fit = options.fit;
  if (size <= 0 || fit <= 0 || fit > size || size > 4096) {
    fail("digit", "options", "need 0 < fit <= size <= 4096, got fit " + std::to_string(fit) + ", size " +
                                 std::to_string(size));
  }
  if (w < 0 || h < 0 || static_cast<int64_t>(image.pixels.size()) != w * h) {
    fail("digit", "image", "pixel count does not match " + std::to_string(w) + "x" + std::to_string(h));
  }
  Digit digit;
  digit.image = {size, size, std::vector<uint8_t>(static_cast<size_t>(size * size), 0)};
  digit.blank = true;
  if (w == 0 || h == 0) return digit;
  const auto at = [&](int64_t x, int64_t y) { return image.pixels[static_cast<size_t>(y * w + x)]; };

  // 1. Background from the border: its mean decides the polarity, its median is the black level.
  std::array<int64_t, 256> histogram{};
  int64_t border = 0;
  for (int64_t y = 0; y < h; ++y) {
    const int64_t stride = (y == 0 || y == h - 1) ? 1 : std::max<int64_t>(w - 1, 1);
    for (int64_t x = 0; x < w; x += stride) ++histogram[at(x, y)], ++border;
  }
  double border_sum = 0;
  for (int v = 0; v < 256; ++v) border_sum += static_cast<double>(v) * static_cast<double>(histogram[static_cast<size_t>(v)]);
  digit.inverted = border_sum / static_cast<double>(border) > kLightBackground;
  if (digit.inverted) std::reverse(histogram.begin(), histogram.end());
  const int black = median(histogram, border);
  const auto ink = [&](int64_t x, int64_t y) { return digit.inverted ? 255 - at(x, y) : at(x, y); };

  // 2. Contrast: black -> 0, the brightest ink -> 1.
  int peak = 0;
  for (uint8_t v : image.pixels) peak = std::max(peak, digit.inverted ? 255 - v : int{v});
  if (peak - black < kMinContrast) return digit;
  const double scale = 1.0 / (peak - black);
  const auto level = [&](int64_t x, int64_t y) { return std::clamp((ink(x, y) - black) * scale, 0.0, 1.0); };

  // 3. Bounding box of the ink.
  int64_t x0 = w, x1 = -1, y0 = h, y1 = -1;
  for (int64_t y = 0; y < h; ++y) {
    for (int64_t x = 0; x < w; ++x) {
      if (level(x, y) > kInkThreshold) {
        x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
      }
    }
  }
  const int64_t bw = x1 - x0 + 1, bh = y1 - y0 + 1;

  // 4. Fit the box into fit x fit, aspect kept: rows first, then columns.
  const double s = static_cast<double>(fit) / static_cast<double>(std::max(bw, bh));
  const int64_t nw = std::clamp<int64_t>(std::llround(static_cast<double>(bw) * s), 1, fit);
  const int64_t nh = std::clamp<int64_t>(std::llround(static_cast<double>(bh) * s), 1, fit);
  std::vector<double> line(static_cast<size_t>(bw)), rows(static_cast<size_t>(bh * nw)),
      scaled(static_cast<size_t>(nh * nw));
  for (int64_t y = 0; y < bh; ++y) {
    for (int64_t x = 0; x < bw; ++x) line[static_cast<size_t>(x)] = level(x0 + x, y0 + y);
    resample_axis(&rows[static_cast<size_t>(y * nw)], 1, nw, line.data(), 1, bw);
  }
  for (int64_t x = 0; x < nw; ++x) resample_axis(&scaled[static_cast<size_t>(x)], nw, nh, &rows[static_cast<size_t>(x)], nw, bh);

  // 5. Center of mass (in pixel indices) onto (size/2, size/2), by whole pixels.
  double mass = 0, my = 0, mx = 0;
  for (int64_t y = 0; y < nh; ++y) {
    for (int64_t x = 0; x < nw; ++x) {
      const double v = scaled[static_cast<size_t>(y * nw + x)];
      mass += v, my += v * static_cast<double>(y), mx += v * static_cast<double>(x);
    }
  }
  if (mass <= 0) return digit;
  const double center = static_cast<double>(size / 2);
  const int64_t oy = std::llround(center - my / mass), ox = std::llround(center - mx / mass);
  for (int64_t y = 0; y < nh; ++y) {
    for (int64_t x = 0; x < nw; ++x) {
      const int64_t ty = y + oy, tx = x + ox;
      if (ty < 0 || ty >= size || tx < 0 || tx >= size) continue;
      const double v = std::round(255.0 * scaled[static_cast<size_t>(y * nw + x)]);
      digit.image.pixels[static_cast<size_t>(ty * size + tx)] = static_cast<uint8_t>(std::clamp(v, 0.0, 255.0));
    }
  }
  digit.blank = false;
  return digit;
}

void normalize_digit(float* out, const GrayImage& digit, const DigitOptions& options) {
  // The function training applies (gather_batch), for the same floats.
  for (size_t i = 0; i < digit.pixels.size(); ++i) out[i] = options.input(digit.pixels[i]);
}

}  // namespace bnlab
