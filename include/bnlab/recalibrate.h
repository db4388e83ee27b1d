// Precise BN (recalibration): every BatchNorm layer's running_mean and running_var re-estimated
// as the exact average over N training batches with the weights fixed, as PyTorch 1.13's
// torch.optim.swa_utils.update_bn and fvcore's update_bn_stats do: the running statistics reset,
// momentum none (the cumulative average, 1/k for the k-th batch), forward in training mode with
// nothing saved for backward, each layer's momentum put back afterwards. num_batches_tracked is
// left at N, as update_bn leaves it. The batches are the first N * batch_size training samples
// in file order, so that another tool can take the same ones.
// Only BatchNorm1d/2d with track_running_stats are touched (update_bn takes _BatchNorm modules,
// which InstanceNorm is not); GroupNorm and LayerNorm keep no running statistics.
#pragma once

#include <cstdint>
#include <string>

#include "bnlab/data.h"
#include "bnlab/network.h"

namespace bnlab {

struct RecalibrateOptions {
  int64_t batches = 100;
  int64_t batch_size = 64;
  // AsMode: Dropout drops as in training (update_bn runs the model in train mode); Off: BN sees
  // the activations of evaluation (Li et al. 2019's remedy for dropout's variance shift).
  DropoutMode dropout = DropoutMode::AsMode;
  uint64_t seed = 1;  // the dropout masks, with dropout AsMode
};

struct RecalibrateResult {
  int64_t layers = 0;   // BatchNorm layers re-estimated
  int64_t samples = 0;  // training samples run
};

// Reserves `net` for options.batch_size if it holds less. Error (check_recalibration's) if the
// training set has fewer than batches * batch_size samples.
// `where` starts the message ("recalibrate: batches", or the flag that set the count).
void check_recalibration(const DataSource& data, const RecalibrateOptions& options,
                         const std::string& where = "recalibrate: batches");
RecalibrateResult recalibrate_batchnorm(Network& net, const DataSource& data, const RecalibrateOptions& options);

}  // namespace bnlab
