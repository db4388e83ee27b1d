// The gradient of every weight matrix and convolution kernel at initialization, on the first
// training images: how evenly the first step would move the layers (depth, input-normalization).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bnlab/data.h"
#include "bnlab/network.h"

namespace bnlab::experiments {

struct WeightGradient {
  std::string name;  // the state_dict key, "0.weight"
  double norm = 0;   // Frobenius norm of its gradient
};

// One training-mode forward and backward pass over the first min(n, count) training images
// (scaled as `data` says), first layer first; every ".weight" of two or more dimensions
// (BN's gamma is left out). The network's gradients are left zeroed.
std::vector<WeightGradient> weight_gradients_at_init(Network& net, const DataSource& data, int64_t n);

}  // namespace bnlab::experiments
