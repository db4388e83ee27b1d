#include "bnlab/loss.h"

#include <string>

#include "bnlab/error.h"
#include "bnlab/network.h"
#include "kernels/softmax.h"

namespace bnlab {

double nll_loss(float* dlogp, const float* logp, const uint8_t* labels, int64_t n, int64_t classes) {
  return kernels::nll_loss(dlogp, logp, labels, n, classes);
}

void require_log_probabilities(const Network& net) {
  const size_t last = net.layer_count() - 1;
  if (net.layer_count() > 0 && net.layer(last).kind() == LayerKind::LogSoftmax) return;
  const std::string what = net.layer_count() == 0 ? "the network has no layers"
                                                  : "the last layer is " + std::string(net.layer(last).type()) + " '" +
                                                        net.layer_name(last) + "'";
  fail("network", "output", what + "; the NLL loss needs log-probabilities: end the network with LogSoftmax");
}

int64_t count_correct(const float* scores, const uint8_t* labels, int64_t n, int64_t classes) {
  int64_t correct = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float* row = scores + i * classes;
    int64_t best = 0;
    for (int64_t k = 1; k < classes; ++k)
      if (row[k] > row[best]) best = k;
    correct += best == labels[i];
  }
  return correct;
}

}  // namespace bnlab
