#include "serve/model_weights.h"

#include <algorithm>

#include "bnlab/error.h"
#include "bnlab/spec.h"

namespace bnlab::serve {

SharedWeights capture_weights(Network& net, std::string spec, std::string label) {
  auto w = std::make_shared<ModelWeights>();
  w->spec = std::move(spec);
  w->label = std::move(label);
  w->params.assign(net.parameters().begin(), net.parameters().end());
  w->buffers.assign(net.buffers().begin(), net.buffers().end());
  w->counters.assign(net.counters().begin(), net.counters().end());
  return w;
}

void restore_weights(Network& net, const ModelWeights& w) {
  if (net.parameters().size() != w.params.size() || net.buffers().size() != w.buffers.size() ||
      net.counters().size() != w.counters.size()) {
    fail("serve", "weights", "do not match the network they are restored into");
  }
  std::copy(w.params.begin(), w.params.end(), net.parameters().begin());
  std::copy(w.buffers.begin(), w.buffers.end(), net.buffers().begin());
  std::copy(w.counters.begin(), w.counters.end(), net.counters().begin());
}

Network build_digit_network(const std::string& spec_text, const std::string& source) {
  return build_network(parse_spec(spec_text, source), {1, 28, 28});
}

}  // namespace bnlab::serve
