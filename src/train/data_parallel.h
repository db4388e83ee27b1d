// The data-parallel parts of a training step: which samples a process takes, the gradient
// buckets summed across processes while backward runs (as DDP's), and their average.
#pragma once

#include <cstdint>
#include <vector>

#include "bnlab/comm.h"
#include "bnlab/network.h"

namespace bnlab {

// A contiguous range of the gradient buffer, complete once backward has run layer closes_after.
struct GradientBucket {
  int64_t begin, end;
  size_t closes_after;
};

// Buckets in the order backward completes them: layers from the last, their gradient slices
// (laid out in layer order) joined until a bucket holds bucket_bytes. Empty: no buckets.
std::vector<GradientBucket> gradient_buckets(const Network& net, int64_t bucket_bytes);

// This process's share of an epoch's `order`: every P-th sample from its rank on, the order padded
// by its own beginning to a multiple of P (DistributedSampler's rule). shard has ceil(count/P).
void shard_of(std::vector<int64_t>& shard, const std::vector<int64_t>& order, int rank, int processes);

// Backward of the last forward with the gradients summed across processes, by buckets started
// as soon as their layers are done (or one sum after backward without buckets), then averaged.
void backward_averaged(Network& net, const float* dlogp, int64_t n, Communicator& comm,
                       const std::vector<GradientBucket>& buckets);

}  // namespace bnlab
