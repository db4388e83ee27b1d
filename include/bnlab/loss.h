// The loss of the tutorial's network: negative log-likelihood of log-probabilities
// (LogSoftmax output), mean over the batch as F.nll_loss.
#pragma once

#include <cstdint>

namespace bnlab {

class Network;


// Returns the mean loss; dlogp (n, classes) receives its gradient unless null.
double nll_loss(float* dlogp, const float* logp, const uint8_t* labels, int64_t n, int64_t classes);

// How many rows have their largest score at the label (first maximum wins, as argmax).
int64_t count_correct(const float* scores, const uint8_t* labels, int64_t n, int64_t classes);

// The NLL loss (and bnlab's probabilities) expect log-probabilities: an Error naming the last
// layer unless the network ends in LogSoftmax (a network ending in Linear would train against
// raw scores silently, to a negative loss).
void require_log_probabilities(const Network& net);

}  // namespace bnlab
