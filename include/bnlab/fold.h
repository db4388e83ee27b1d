// Batch norm folded into the layer before it, for inference. In eval mode a BatchNorm after a
// Conv2d or Linear is an affine map per channel, so it can be merged into that layer's weights:
//   s = weight_bn / sqrt(running_var + eps)
//   W'[o, ...] = W[o, ...] * s[o]          b'[o] = (b[o] - running_mean[o]) * s[o] + bias_bn[o]
// (Jacob et al. 2018, sec. 3.2). The folded network has no BN layers and one pass fewer per BN.
#pragma once

#include <string>

#include "bnlab/network.h"
#include "bnlab/spec.h"

namespace bnlab {

struct FoldedNetwork {
  NetworkSpec spec;  // the original lines less the folded BNs; every line named explicitly
  std::string text;  // the same as a spec file
  Network net;       // its tensors filled from the trained network
};

// Folds each BatchNorm with running statistics that directly follows a Conv2d or Linear.
// `trained` must have been built from `spec` for `input_shape`; it is read, not changed.
FoldedNetwork fold_batchnorm(const NetworkSpec& spec, Network& trained, const Shape& input_shape);

// A spec as text that parse_spec reads back to the same layers.
std::string spec_text(const NetworkSpec& spec);

}  // namespace bnlab
