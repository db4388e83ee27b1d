#include "bnlab/loss.h"

#include "kernels/softmax.h"

namespace bnlab {

double nll_loss(float* dlogp, const float* logp, const uint8_t* labels, int64_t n, int64_t classes) {
  return kernels::nll_loss(dlogp, logp, labels, n, classes);
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
