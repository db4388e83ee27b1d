// A model as the server holds it: its spec and a copy of its flat buffers (parameters, running
// statistics, counters). Immutable once made and shared between threads, so that a training run
// can publish snapshots while the page looks at them, and no look ever writes into one.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bnlab/network.h"

namespace bnlab::serve {

struct ModelWeights {
  std::string spec;   // spec text that rebuilds the network
  std::string label;  // what the page shows: "seed, model.safetensors", "run 2 at step 40"
  std::vector<float> params, buffers;
  std::vector<int64_t> counters;
};

using SharedWeights = std::shared_ptr<const ModelWeights>;

SharedWeights capture_weights(Network& net, std::string spec, std::string label);
// `net` must have been built from w.spec (same layout).
void restore_weights(Network& net, const ModelWeights& w);
// The network of a spec text, for 28x28 single-channel digits.
Network build_digit_network(const std::string& spec_text, const std::string& source);

}  // namespace bnlab::serve
