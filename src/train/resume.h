// Training checkpoints: everything a run needs to continue bit for bit. The model's tensors keep
// their state_dict names; the optimizer's state is stored as "optimizer.*" tensors; where the run
// stood (epoch, batch, step, running loss sums) and the options that must not change are stored
// as metadata, doubles in hexadecimal so that they round-trip exactly.
#pragma once

#include <string>

#include "bnlab/data.h"
#include "bnlab/network.h"
#include "bnlab/optim.h"
#include "bnlab/train.h"

namespace bnlab {

struct TrainPosition {
  int64_t epoch = 0;  // the epoch to run next, from 0
  int64_t batch = 0;  // its first batch to run
  int64_t step = 0;   // optimizer steps done
  double epoch_loss = 0, interval_loss = 0;
  int64_t epoch_batches = 0, interval_batches = 0;
  int64_t skipped = 0;
  double seconds = 0;  // training time before this point
};

void save_train_checkpoint(const std::string& path, Network& net, Optimizer& optimizer,
                           const TrainOptions& options, const DataSource& data,
                           const TrainPosition& position);

// Fine-tuning's start (TrainOptions::init_from): the network's state_dict from a model file
// (strictly, as load_checkpoint) or from a training checkpoint (its model tensors; the optimizer's
// and the position are left). Error names the file and the first tensor that does not match.
void load_initial_weights(const std::string& path, Network& net);

// Restores net and optimizer; Error if the file was made by a run with other options or data.
TrainPosition load_train_checkpoint(const std::string& path, Network& net, Optimizer& optimizer,
                                    const TrainOptions& options, const DataSource& data);

}  // namespace bnlab
