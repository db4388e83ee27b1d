// The runs of `bnlab experiment batch-size` as plain data (Wu & He 2018, Figure 1): for each
// normalizer and normalization batch, the network's spec text, the optimizer's batch, the steps
// that make every run see the same number of training images, and the learning rate. Kept apart
// from the training so that the plan is unit-tested on its own.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace bnlab::experiments {

// The optimizer batch of the ghost-batch runs, and the batch that --steps counts in.
constexpr int64_t kGhostOptimizerBatch = 64;

// Same: the optimizer's batch is the normalization batch (small batches take more steps).
// Ghost: batches of kGhostOptimizerBatch, BN normalizing each run of norm_batch samples alone.
enum class BatchMode { Same, Ghost };
const char* mode_name(BatchMode mode);  // "same", "ghost"

struct SizeRun {
  std::string norm;  // "bn", "gn", "ln", "renorm"
  BatchMode mode = BatchMode::Same;
  int64_t norm_batch = 0, optimizer_batch = 0;
  int64_t steps = 0;  // images / optimizer_batch
  double lr = 0;      // base_lr * optimizer_batch / kGhostOptimizerBatch (the linear scaling rule)
};

// The normalizers, in the order of the tables and figures.
const std::vector<std::string>& batch_size_norms();

// Every run for `sizes` (normalization batches, each dividing kGhostOptimizerBatch and at least 2,
// no repeats: an Error naming --sizes otherwise) and `images` per run (a multiple of
// kGhostOptimizerBatch): each normalizer at each size with the optimizer batch equal to it, then
// BN with ghost batches of each size below kGhostOptimizerBatch (at that size both modes are one
// run). GroupNorm and LayerNorm normalize each sample alone, so ghost batches would change
// nothing; bnlab's BatchNorm does not combine renorm with virtual_batch.
std::vector<SizeRun> batch_size_runs(const std::vector<int64_t>& sizes, int64_t images, double base_lr);

// The tutorial's network (specs/seed.spec) with the run's normalizer: BN with virtual_batch set in
// ghost mode, GroupNorm or LayerNorm in place of each BN, or Batch Renormalization at r_max 3,
// d_max 5, plain BN for the first eighth of the run's steps, the limits rising over the next quarter.
std::string batch_size_net(const SizeRun& run);

// The run key: "bn/same/8/s1", "bn/ghost/8/s1".
std::string batch_size_key(const SizeRun& run, int64_t seed);

}  // namespace bnlab::experiments
