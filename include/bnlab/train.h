// The training loop of the PyTorch MNIST example: shuffle each epoch from the seed, one optimizer
// step per mini-batch (the last one may be smaller), StepLR after each epoch, test after each epoch.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "bnlab/comm.h"
#include "bnlab/data.h"
#include "bnlab/network.h"
#include "bnlab/optim.h"

namespace bnlab {

struct TrainOptions {
  int64_t epochs = 1;
  int64_t batch_size = 64;
  int64_t test_batch_size = 1000;
  OptimizerOptions optimizer{};
  double gamma = 0.7;   // StepLR factor per epoch
  uint64_t seed = 1;
  int64_t log_interval = 10;  // batches between progress reports
  int64_t max_steps = 0;      // stop after this many steps in all (0: no limit)

  // Gradient accumulation (train_step.h): each batch of batch_size runs as `accumulate`
  // micro-batches of batch_size / accumulate (which must divide it), one optimizer step per batch;
  // steps, checkpoints and max_steps count optimizer steps, num_batches_tracked micro-batches.
  int64_t accumulate = 1;
  // Precise BN (recalibrate.h): before each test pass, every BatchNorm's running statistics are
  // re-estimated over the first precise_bn training batches of batch_size / accumulate samples
  // (the batch BN normalized over in training), dropout as in training; 0: never. It changes the
  // trained model's running statistics, as detectron2's PreciseBN hook does.
  int64_t precise_bn = 0;
  // Fine-tuning: the model's weights and buffers from this checkpoint (a model file or a training
  // checkpoint), strictly matching the network; a fresh optimizer, step 0, the schedule from its
  // start. Not with a resume.
  std::string init_from{};

  // Resumable checkpoints (model, optimizer state, schedule and position in the data), written
  // atomically to checkpoint_path every checkpoint_every steps (0: never) and when stopped.
  std::string checkpoint_path{};
  int64_t checkpoint_every = 0;
  // Set from a signal handler: finish the current step, write the checkpoint, return.
  const std::atomic<bool>* stop_requested = nullptr;

  enum class OnNan { Stop, Skip };
  OnNan on_nan = OnNan::Stop;  // Skip: drop the batch, restore BN statistics, carry on

  // Data-parallel training (null: one process). Each process takes every P-th sample of the
  // epoch's order (as PyTorch's DistributedSampler), batch_size is per process, gradients are
  // averaged, and only rank 0 reports, evaluates and writes checkpoints. Without
  // sync_batchnorm each process normalizes with its own batch statistics and the running
  // statistics are rank 0's (broadcast before each step, as PyTorch's DDP does).
  Communicator* comm = nullptr;
  bool sync_batchnorm = false;
  // Gradients are summed across processes in buckets of about this many bytes, each started as
  // soon as backward has finished its layers (last layer first), so that communication overlaps
  // the rest of backward; 0: one sum of all gradients after backward.
  int64_t bucket_bytes = int64_t{1} << 20;
};

struct StepReport {
  int64_t step = 0, epoch = 0;    // step counts from 1; epoch from 1
  int64_t seen = 0, epoch_size = 0;  // samples of this epoch done, of how many
  double train_loss = 0;          // mean over the batches since the last report
  double lr = 0, seconds = 0;
};

struct EvalResult {
  double loss = 0;      // mean NLL over the set
  int64_t correct = 0, count = 0;
  double accuracy() const { return count ? 100.0 * static_cast<double>(correct) / static_cast<double>(count) : 0; }
};

struct EpochReport {
  int64_t step = 0, epoch = 0;
  double train_loss = 0;  // mean over the epoch's batches
  EvalResult test;
  double lr = 0, seconds = 0;
};

// Receives progress; the command prints it and writes the metrics file.
class TrainObserver {
 public:
  virtual ~TrainObserver() = default;
  virtual void on_step(const StepReport&) {}
  virtual void on_epoch(const EpochReport&) {}
};

struct TrainResult {
  int64_t steps = 0, epochs = 0;
  int64_t skipped = 0;      // batches dropped for a non-finite loss or gradient (OnNan::Skip)
  bool interrupted = false;  // stop_requested was seen; the checkpoint holds the run
  EvalResult test;
  double seconds = 0;
};

// Initializes nothing: `net` arrives initialized (or loaded; options.init_from loads it here) and
// leaves trained. With `resume_path`, the network, optimizer and position are restored from a checkpoint written by
// an earlier run with the same options; the run then continues bit for bit as if never stopped.
TrainResult train(Network& net, const DataSource& data, const TrainOptions& options,
                  TrainObserver& observer, const std::string& resume_path = "");

// The optimizer step at which a training checkpoint was written (for trimming metrics on resume).
int64_t checkpoint_step(const std::string& path);

// Eval-mode pass over a whole set in batches of `batch_size`; with `outputs`, the network's
// outputs for every sample, (count, classes), are stored there too.
EvalResult evaluate(Network& net, const Dataset& set, const DataSource& source, int64_t batch_size,
                    std::vector<float>* outputs = nullptr);

}  // namespace bnlab

namespace bnlab {

// Ghost batches against the training batches, checked before training starts: every
// BatchNorm's virtual_batch must divide `batch` (so that every full batch splits alike), and the
// last batch of a shard of `shard_size` samples must not leave a ghost batch of one sample.
// Error names `batch_name` ("--batch-size") with its value, the layer and its virtual_batch.
void check_virtual_batches(const Network& net, int64_t batch, int64_t shard_size, const std::string& batch_name);

}  // namespace bnlab
