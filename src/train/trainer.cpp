// The epoch loop of PyTorch's MNIST example around the one training step (train_step.h):
// the epoch's order, its batches, StepLR, progress, the test pass, checkpoints and stop requests.
#include <chrono>

#include "bnlab/error.h"
#include "bnlab/recalibrate.h"
#include "bnlab/train.h"
#include "bnlab/train_step.h"
#include "train/data_parallel.h"
#include "train/resume.h"

namespace bnlab {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Precise BN before a test pass: rank 0 recalibrates on its own (the other processes wait; no
// synchronized statistics) and sends its running statistics to all, so that every process holds
// the model that rank 0 evaluates and saves.
void precise_batchnorm(Network& net, const DataSource& data, const RecalibrateOptions& options, Communicator& comm,
                       bool sync_batchnorm) {
  if (comm.rank() == 0) {
    if (sync_batchnorm) net.set_communicator(nullptr);
    recalibrate_batchnorm(net, data, options);
    if (sync_batchnorm) net.set_communicator(&comm);
  }
  if (comm.size() > 1) {
    comm.broadcast(net.buffers().data(), static_cast<int64_t>(net.buffers().size()));
    comm.broadcast(net.counters().data(), static_cast<int64_t>(net.counters().size()));
  }
}

}  // namespace

TrainResult train(Network& net, const DataSource& data, const TrainOptions& options,
                  TrainObserver& observer, const std::string& resume_path) {
  if (options.batch_size <= 0) fail("train", "batch_size", "must be positive");
  if (options.test_batch_size <= 0) fail("train", "test_batch_size", "must be positive");
  if (options.epochs <= 0) fail("train", "epochs", "must be positive");
  if (options.accumulate <= 0) fail("train", "accumulate", "must be positive");
  if (options.batch_size % options.accumulate != 0) {
    fail("train", "accumulate", std::to_string(options.accumulate) + " does not divide batch_size " +
                                    std::to_string(options.batch_size));
  }
  if (options.precise_bn < 0) fail("train", "precise_bn", "must be 0 (off) or a number of batches");
  if (!options.init_from.empty() && !resume_path.empty()) {
    fail("train", "init_from", "cannot be combined with a resume (a resumed run has its weights already)");
  }
  if (options.checkpoint_every > 0 && options.checkpoint_path.empty()) {
    fail("train", "checkpoint_every", "needs a checkpoint path");
  }
  const Dataset& set = data.train;
  const Shape expected{1, set.height, set.width};
  if (net.input_shape() != expected) {
    fail(set.images_path, "dimensions",
         "images are " + to_string(expected) + " but the network expects " + to_string(net.input_shape()));
  }
  Communicator single_process;
  Communicator& comm = options.comm ? *options.comm : single_process;
  const int processes = comm.size();
  const bool lead = comm.rank() == 0;
  std::unique_ptr<Optimizer> optimizer = make_optimizer(options.optimizer, static_cast<int64_t>(net.parameters().size()));
  TrainStep train_step(net, data, *optimizer, options.batch_size,
                       {.seed = options.seed, .restore_on_fault = options.on_nan == TrainOptions::OnNan::Skip,
                        .comm = &comm, .sync_batchnorm = options.sync_batchnorm, .bucket_bytes = options.bucket_bytes,
                        .accumulate = options.accumulate});
  // Precise BN recalibrates in batches of the micro-batch: what BN normalized over in training.
  const RecalibrateOptions precise{.batches = options.precise_bn, .batch_size = train_step.micro_batch(), .seed = options.seed};
  if (options.precise_bn > 0) check_recalibration(data, precise, "train: precise_bn");  // before any step
  if (!net.eval_is_per_sample()) net.reserve_inference(options.test_batch_size);

  TrainPosition at;
  if (!resume_path.empty()) at = load_train_checkpoint(resume_path, net, *optimizer, options, data);
  if (!options.init_from.empty()) load_initial_weights(options.init_from, net);
  const StepLR schedule{.base_lr = options.optimizer.lr, .gamma = options.gamma};
  std::vector<int64_t> order(static_cast<size_t>(set.count));
  // This process's share of each epoch: every P-th sample from its rank on, the order padded by
  // its own beginning to a multiple of P (DistributedSampler's rule).
  const int64_t shard_size = (set.count + processes - 1) / processes;
  check_virtual_batches(net, options.batch_size / options.accumulate, shard_size, "batch_size / accumulate");
  std::vector<int64_t> shard(static_cast<size_t>(shard_size));
  const int64_t batches = (shard_size + options.batch_size - 1) / options.batch_size;

  const auto start = Clock::now();
  auto elapsed = [&] { return at.seconds + seconds_since(start); };
  // `position` is where a resumed run starts: always the beginning of a batch.
  auto checkpoint = [&](TrainPosition position) {
    if (options.checkpoint_path.empty() || !lead) return;  // one writer; a library caller may only stop
    position.seconds = elapsed();
    save_train_checkpoint(options.checkpoint_path, net, *optimizer, options, data, position);
  };
  auto interrupt_requested = [&] { return options.stop_requested && options.stop_requested->load(); };
  bool stop_agreed = false;  // every process has seen the interrupt by the end of this step
  TrainResult result;
  bool stop = options.max_steps > 0 && at.step >= options.max_steps;
  for (; at.epoch < options.epochs && !stop; ++at.epoch) {
    const double lr = schedule.lr_at(at.epoch);
    shuffle_epoch(order, options.seed, at.epoch);
    shard_of(shard, order, comm.rank(), processes);
    while (at.batch < batches && !stop) {
      const int64_t begin = at.batch * options.batch_size;
      const int64_t n = std::min(options.batch_size, shard_size - begin);
      ++at.step;
      const StepResult r = train_step.run(shard.data() + begin, n, at.step, lr, interrupt_requested());
      stop_agreed = r.stop_agreed;
      if (r.fault != StepResult::Fault::None && options.on_nan == TrainOptions::OnNan::Stop) {
        fail("training", "step " + std::to_string(at.step),
             describe_fault(r) + "; try a smaller --lr" +
                 (options.checkpoint_path.empty() ? "" : "; the last good checkpoint is " + options.checkpoint_path));
      }
      if (r.fault != StepResult::Fault::None) {
        ++at.skipped;
      } else {
        at.epoch_loss += r.loss;
        at.interval_loss += r.loss;
        ++at.epoch_batches;
        ++at.interval_batches;
      }
      ++at.batch;
      stop = options.max_steps > 0 && at.step >= options.max_steps;
      if (lead && (at.step % options.log_interval == 0 || at.batch == batches || stop)) {
        observer.on_step({.step = at.step, .epoch = at.epoch + 1, .seen = std::min(set.count, (begin + n) * processes), .epoch_size = set.count,
                          .train_loss = at.interval_loss / static_cast<double>(std::max<int64_t>(at.interval_batches, 1)),
                          .lr = lr, .seconds = elapsed()});
        at.interval_loss = 0;
        at.interval_batches = 0;
      }
      if (at.batch == batches) break;  // the epoch's evaluation and its checkpoint follow
      if (stop_agreed) {
        checkpoint(at);
        result.interrupted = true;
        break;
      }
      if (options.checkpoint_every > 0 && at.step % options.checkpoint_every == 0) checkpoint(at);
    }
    if (result.interrupted) break;
    // After every epoch, and when --max-steps ends the run inside one; by rank 0 alone.
    if (options.precise_bn > 0) precise_batchnorm(net, data, precise, comm, options.sync_batchnorm);
    if (lead) {
      EpochReport report{.step = at.step, .epoch = at.epoch + 1,
                         .train_loss = at.epoch_loss / static_cast<double>(std::max<int64_t>(at.epoch_batches, 1)),
                         .test = evaluate(net, data.test, data, options.test_batch_size),
                         .lr = lr, .seconds = 0};
      report.seconds = elapsed();
      observer.on_epoch(report);
      result.test = report.test;
    }
    result.epochs = at.epoch + 1;
    at.epoch_loss = 0;
    at.epoch_batches = 0;
    at.batch = 0;
    const bool due = options.checkpoint_every > 0 && at.step % options.checkpoint_every == 0;
    if (due || stop_agreed) {
      TrainPosition next = at;
      ++next.epoch;
      checkpoint(next);
      if (stop_agreed) {
        result.interrupted = true;
        ++at.epoch;
        break;
      }
    }
  }
  result.steps = at.step;
  result.skipped = at.skipped;
  result.seconds = elapsed();
  return result;
}

}  // namespace bnlab
