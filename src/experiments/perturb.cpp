#include "experiments/perturb.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "bnlab/loss.h"
#include "bnlab/rng.h"

namespace bnlab::experiments {

void gather_pixels(std::vector<float>& pixels, std::vector<uint8_t>& labels, const Dataset& set,
                   const int64_t* indices, int64_t n) {
  const int64_t size = set.height * set.width;
  pixels.resize(static_cast<size_t>(n * size));
  labels.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* src = set.images.data() + indices[i] * size;
    for (int64_t k = 0; k < size; ++k) pixels[static_cast<size_t>(i * size + k)] = static_cast<float>(src[k]) / 255.0f;
    labels[static_cast<size_t>(i)] = set.labels[static_cast<size_t>(indices[i])];
  }
}

void add_gaussian_noise(std::vector<float>& pixels, const int64_t* indices, int64_t n, int64_t pixels_per_sample,
                        double sigma, uint64_t key) {
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t sample_key = random_bits(key, static_cast<uint64_t>(indices[i]));
    for (int64_t k = 0; k < pixels_per_sample; ++k) {
      // Box-Muller from two uniforms; 1 - u keeps the logarithm's argument in (0, 1].
      const double u1 = 1.0 - random_uniform(sample_key, 2 * static_cast<uint64_t>(k));
      const double u2 = random_uniform(sample_key, 2 * static_cast<uint64_t>(k) + 1);
      const double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
      float& p = pixels[static_cast<size_t>(i * pixels_per_sample + k)];
      p = std::clamp(static_cast<float>(p + sigma * z), 0.0f, 1.0f);
    }
  }
}

const float* forward_pixels(Network& net, const DataSource& data, const std::vector<float>& pixels, int64_t n,
                            std::vector<float>& scratch) {
  scratch.resize(static_cast<size_t>(n) * (pixels.size() / static_cast<size_t>(n)));
  const InputNormalization scaled = input_normalization(data);
  for (size_t i = 0; i < scratch.size(); ++i) scratch[i] = scaled.of_unit(pixels[i]);  // as gather_batch
  return net.forward(scratch.data(), n, {.mode = Mode::Eval, .random_key = 0, .backward_follows = true});
}

std::vector<float> pixel_gradient(Network& net, const DataSource& data, const std::vector<float>& pixels,
                                  const std::vector<uint8_t>& labels, int64_t n) {
  std::vector<float> scratch;
  const float* logp = forward_pixels(net, data, pixels, n, scratch);
  const int64_t classes = net.output_shape().back();
  std::vector<float> dlogp(static_cast<size_t>(n * classes));
  nll_loss(dlogp.data(), logp, labels.data(), n, classes);
  std::vector<float> gradient(pixels.size());
  net.backward(dlogp.data(), n, gradient.data());
  net.zero_grad();
  const float divisor = input_normalization(data).divisor();
  for (float& g : gradient) g /= divisor;  // d(input)/d(pixel) = 1 / divisor
  return gradient;
}

void fgsm_step(std::vector<float>& pixels, const std::vector<float>& gradient, double eps) {
  const float e = static_cast<float>(eps);
  for (size_t i = 0; i < pixels.size(); ++i) {
    const float step = gradient[i] > 0 ? e : gradient[i] < 0 ? -e : 0.0f;
    pixels[i] = std::clamp(pixels[i] + step, 0.0f, 1.0f);
  }
}

}  // namespace bnlab::experiments
