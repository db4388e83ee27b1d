// libFuzzer target for the network description format: parse_spec (src/nn/spec.cpp) and
// build_network (src/nn/build.cpp, the layers' setup, src/nn/network.cpp) for one 1x28x28 sample,
// as `bnlab train` does for MNIST. Inputs over 4 KB are skipped to keep runs fast; sizes inside
// the text are not capped here: the library must reject a network too large to allocate with an
// Error (run with -rss_limit_mb / -malloc_limit_mb to catch it when it does not).
// Only bnlab::Error may escape; anything else is a bug.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "bnlab/error.h"
#include "bnlab/spec.h"

// The spec's lines at the top level: a Residual ... end block is one layer of the network.
static size_t top_level_layers(const bnlab::NetworkSpec& spec) {
  size_t count = 0, depth = 0;
  for (const bnlab::SpecLine& line : spec.layers) {
    if (line.type == "end") {
      --depth;
      continue;
    }
    if (depth == 0) ++count;
    if (line.type == "Residual") ++depth;
  }
  return count;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 4096) return -1;  // not added to the corpus
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const bnlab::NetworkSpec spec = bnlab::parse_spec(text, "fuzz.spec");
    bnlab::Network net = bnlab::build_network(spec, {1, 28, 28});
    if (net.layer_count() != top_level_layers(spec)) std::abort();
  } catch (const bnlab::Error&) {
  }
  return 0;
}
