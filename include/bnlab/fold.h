// Batch norm folded into the layer before it, for inference. In eval mode a BatchNorm after a
// Conv2d or Linear is an affine map per channel, so it can be merged into that layer's weights:
//   s = weight_bn / sqrt(running_var + eps)
//   W'[o, ...] = W[o, ...] * s[o]          b'[o] = (b[o] - running_mean[o]) * s[o] + bias_bn[o]
// (Jacob et al. 2018, sec. 3.2). The folded network has no such BN layers and one pass fewer per
// BN. This is the one fold: `eval --fold-bn`, `export --fold-bn` and the exporters use it.
#pragma once

#include <string>

#include "bnlab/network.h"

namespace bnlab {

struct FoldedNetwork {
  std::string text;  // the folded network as a spec file (every layer named explicitly)
  Network net;       // its tensors filled from the trained network
  int folded = 0;    // BatchNorm layers folded away
};

// Folds each BatchNorm with running statistics that directly follows a Conv2d or Linear, at every
// level of the network (inside Residual blocks too). `trained` is read, not changed; every other
// tensor keeps its name and values.
FoldedNetwork fold_batchnorm(Network& trained);

}  // namespace bnlab
