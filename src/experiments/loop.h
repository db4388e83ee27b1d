// The experiments' training loop: a fixed number of optimizer steps (not epochs) with a test
// evaluation every few steps, and divergence recorded instead of thrown. The data order is the
// trainer's rule (a Fisher-Yates shuffle per epoch from the seed), taking full batches only
// (the last incomplete batch of an epoch is dropped, as DataLoader(drop_last=True)); no StepLR.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "bnlab/data.h"
#include "bnlab/network.h"
#include "bnlab/optim.h"
#include "bnlab/train.h"
#include "experiments/suite.h"

namespace bnlab::experiments {

struct LoopOptions {
  int64_t steps = 0;
  int64_t batch_size = 64;
  OptimizerOptions optimizer{};
  uint64_t seed = 1;                  // shuffling and dropout (initialize the network yourself)
  int64_t eval_every = 0;             // 0: evaluate at the end only
  int64_t loss_every = 0;             // also a training-loss point every N steps (0: at evaluations only)
  int64_t eval_images = 2000;         // the curve's test subset: the first N test images
  int64_t eval_batch = 1000;
  bool final_full_test = true;        // after the last step, evaluate the whole test set too
  Fusion fusion = Fusion::Full;       // None: every layer's own output for the hooks (activations)
  // The order of the training samples in `epoch` (the vector has one entry per sample); empty:
  // the trainer's shuffle (shuffle_epoch from the seed).
  std::function<void(std::vector<int64_t>& order, int64_t epoch)> epoch_order{};
};

// A training recipe of an experiment: its key in run names, its words in reports, the optimizer.
struct Recipe {
  const char* name;
  const char* label;
  OptimizerOptions optimizer;
};

// One point of a run's curve; NaN marks what was not measured at that point.
struct CurvePoint {
  int64_t step = 0;
  double train_loss = 0;     // mean of the steps since the previous point
  double test_loss = 0, test_accuracy = 0;  // on the test subset
};

struct LoopResult {
  std::vector<CurvePoint> curve;  // step 0 (initialization) first, then every eval_every (and loss_every) steps
  EvalResult final_test;          // whole test set after the last step (if asked and not diverged)
  int64_t diverged_at = 0;        // the step whose loss or gradient was not finite (0: none)
  std::string divergence;         // what was not finite
  int64_t steps_done = 0;
  double seconds = 0;
};

// Optional observers of a run. A hook may run its own eval-mode forward passes (the activations
// of the step are then gone, but nothing else changes).
struct Hooks {
  // After the forward and backward pass of `step` (before the optimizer step), with the batch
  // size: the network's activations and gradients are the step's.
  std::function<void(int64_t step, int64_t n)> after_backward{};
  // After each test evaluation of the curve, at `step` (0: the initialization).
  std::function<void(int64_t step)> at_eval{};
};

// Trains `net` (initialized, not yet reserved or reserved for at least batch_size).
LoopResult train_steps(Network& net, const DataSource& data, const LoopOptions& options,
                       const ProgressFn& progress, const Hooks& hooks = {});

// A run's curve as CSV fields after `prefix`, in the columns of curve_columns(): a row per curve
// point ("curve"), then the whole test set after the last step ("final"), or the step that
// diverged ("diverged", with its non-finite loss).
std::vector<std::string> curve_columns();  // step, train_loss, test_loss, test_accuracy, status
std::vector<Row> curve_rows(const LoopResult& result, const Row& prefix);
// "98.12% test accuracy" or "diverged at step 7 (loss nan)".
std::string outcome(const LoopResult& result);

// The first min(n, count) samples of a set.
Dataset first_samples(const Dataset& set, int64_t n);

}  // namespace bnlab::experiments
