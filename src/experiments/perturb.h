// Perturbations of test images for the robustness experiment, in pixel units (a pixel in [0, 1],
// as the data set's bytes / 255): Gaussian noise and the fast gradient sign method (Goodfellow et
// al. 2015), each clipped back to [0, 1] and then normalized as the network expects.
#pragma once

#include <cstdint>
#include <vector>

#include "bnlab/data.h"
#include "bnlab/network.h"

namespace bnlab::experiments {

// Pixels in [0, 1] of the test samples `indices` (n, H, W) and their labels.
void gather_pixels(std::vector<float>& pixels, std::vector<uint8_t>& labels, const Dataset& set,
                   const int64_t* indices, int64_t n);

// pixels += sigma * N(0, 1), clipped to [0, 1]; the normal draws come from (key, sample index,
// pixel) alone, so a sample is perturbed alike in every batch and run.
void add_gaussian_noise(std::vector<float>& pixels, const int64_t* indices, int64_t n, int64_t pixels_per_sample,
                        double sigma, uint64_t key);

// The gradient of the mean NLL loss with respect to the pixels, in eval mode (running statistics,
// no dropout) through Network::backward's input gradient; the parameter gradients it leaves are
// zeroed. n must not exceed net.capacity().
std::vector<float> pixel_gradient(Network& net, const DataSource& data, const std::vector<float>& pixels,
                                  const std::vector<uint8_t>& labels, int64_t n);

// FGSM: pixels + eps * sign(gradient), clipped to [0, 1] (a zero gradient moves nothing).
void fgsm_step(std::vector<float>& pixels, const std::vector<float>& gradient, double eps);

// Eval-mode log-probabilities of pixels in [0, 1] (normalized as data's pixels are).
const float* forward_pixels(Network& net, const DataSource& data, const std::vector<float>& pixels, int64_t n,
                            std::vector<float>& scratch);

}  // namespace bnlab::experiments
