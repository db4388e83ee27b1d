// Orders of the training (or test) samples other than the trainer's shuffle, for the experiments
// on what a batch is made of.
#pragma once

#include <cstdint>
#include <vector>

#include "bnlab/data.h"

namespace bnlab::experiments {

// The indices of each class's samples, in file order; labels must lie in [0, classes).
std::vector<std::vector<int64_t>> indices_by_class(const Dataset& set, int64_t classes);

// An epoch of single-class batches: the first (count / batch) * batch entries of `order` (resized
// to set.count) become count / batch batches of `batch` samples of one class each. Each class gets
// its share of the batches by its number of samples (largest remainders first), filled from its
// samples in an order shuffled from (seed, epoch), wrapping around when its share takes more than
// it has; then the batches' order is shuffled. The rest of `order` holds the samples unused.
void single_class_batches(std::vector<int64_t>& order, const Dataset& set, int64_t classes, int64_t batch,
                          uint64_t seed, int64_t epoch);

}  // namespace bnlab::experiments
