// One training step, the same for `bnlab train`, the experiments and a caller's own loop:
// gather the batch, forward in training mode, NLL loss, backward, the check for a non-finite loss
// or gradient, and the optimizer step. In a data-parallel run the step also takes the
// processes' part (src/train/data_parallel.h): the running statistics broadcast before it (DDP's
// broadcast_buffers), one agreement on the loss, a fault and a stop request, and the gradients
// averaged in buckets started during backward.
//
// Gradient accumulation (StepOptions::accumulate = K): the batch of n samples is cut into
// micro-batches of max_batch/K (the last one takes the rest), each run forward in training mode
// (BN's statistics, and num_batches_tracked, are per micro-batch, as in PyTorch's usual recipe)
// and backward with its mean loss scaled by (micro-batch size / n): the usual `loss / K` for a full
// batch, the exact batch mean for a smaller one. The gradients add up; the optimizer steps once.
// The network is reserved for the micro-batch, not the batch.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bnlab/comm.h"
#include "bnlab/data.h"
#include "bnlab/network.h"
#include "bnlab/optim.h"

namespace bnlab {

struct StepOptions {
  uint64_t seed = 1;              // dropout masks: a pure function of (seed, step, layer)
  bool restore_on_fault = false;  // a step dropped for a fault puts BN's running statistics back
  Communicator* comm = nullptr;   // data-parallel over its processes (null: this one alone)
  bool sync_batchnorm = false;    // with comm: BN's statistics are the global batch's
  int64_t bucket_bytes = 0;       // with comm: gradient buckets of about this size (0: one sum)
  int64_t accumulate = 1;         // micro-batches per step; must divide max_batch
};

struct StepResult {
  enum class Fault { None, Loss, Gradient, OtherProcess };
  double loss = 0;          // the batch's mean loss (averaged across processes)
  Fault fault = Fault::None;  // not None: the optimizer did not step
  std::string where{};      // Loss: the first layer whose output is not finite; Gradient: the parameter
  bool stop_agreed = false;  // some process asked to stop in this step
};

class TrainStep {
 public:
  // `net` is reserved here for batches of up to max_batch (with `fusion`).
  TrainStep(Network& net, const DataSource& data, Optimizer& optimizer, int64_t max_batch,
            const StepOptions& options, Fusion fusion = Fusion::Full);
  ~TrainStep();
  TrainStep(const TrainStep&) = delete;
  TrainStep& operator=(const TrainStep&) = delete;

  // One step on data.train's samples indices[0..n), n <= max_batch; `step` counts from 1.
  // after_backward(n), if given, sees the step's activations and gradients before the update.
  // With accumulation, after_backward(m) sees the last micro-batch's m samples' activations.
  StepResult run(const int64_t* indices, int64_t n, int64_t step, double lr, bool stop_requested = false,
                 const std::function<void(int64_t)>& after_backward = {});

  int64_t micro_batch() const { return micro_; }

 private:
  struct Parallel;
  Network& net_;
  const DataSource& data_;
  Optimizer& optimizer_;
  StepOptions options_;
  uint64_t dropout_key_;  // the step's masks are derive_key(dropout_key_, step)
  Communicator single_process_;
  Communicator& comm_;
  std::unique_ptr<Parallel> parallel_;
  int64_t micro_ = 0;  // samples per micro-batch: max_batch / accumulate
  std::vector<float> input_, dlogp_;
  std::vector<uint8_t> labels_;
  std::vector<float> saved_buffers_;
  std::vector<int64_t> saved_counters_;
};

// A message for a fault: "loss is nan; first non-finite output in layer 3 'conv2_bn' (BatchNorm2d)".
std::string describe_fault(const StepResult& result);

// The epoch's order of `count` samples: a Fisher-Yates shuffle from (seed, epoch) alone.
void shuffle_epoch(std::vector<int64_t>& order, uint64_t seed, int64_t epoch);

}  // namespace bnlab
