#include "experiments/loop.h"

#include <chrono>
#include <cmath>

#include "bnlab/error.h"
#include "bnlab/loss.h"
#include "bnlab/train_step.h"
#include "experiments/report.h"

namespace bnlab::experiments {
namespace {

using Clock = std::chrono::steady_clock;

}  // namespace

std::vector<std::string> curve_columns() { return {"step", "train_loss", "test_loss", "test_accuracy", "status"}; }

std::vector<Row> curve_rows(const LoopResult& result, const Row& prefix) {
  std::vector<Row> rows;
  auto add = [&](int64_t step, double loss, double test_loss, double accuracy, const char* status) {
    Row r = prefix;
    for (const std::string& f : {field(step), field(loss), field(test_loss), field(accuracy), std::string(status)}) r.push_back(f);
    rows.push_back(std::move(r));
  };
  for (const CurvePoint& p : result.curve) {
    const bool diverged = result.diverged_at > 0 && p.step == result.diverged_at;
    add(p.step, p.train_loss, p.test_loss, p.test_accuracy, diverged ? "diverged" : "curve");
  }
  if (result.diverged_at == 0 && result.final_test.count > 0) {
    add(result.steps_done, std::nan(""), result.final_test.loss, result.final_test.accuracy(), "final");
  }
  return rows;
}

std::string outcome(const LoopResult& result) {
  if (result.diverged_at > 0) return "diverged at step " + std::to_string(result.diverged_at) + " (" + result.divergence + ")";
  if (result.final_test.count > 0) return fixed(result.final_test.accuracy(), 2) + "% test accuracy";
  return fixed(result.curve.back().test_accuracy, 2) + "% on the test subset";
}

Dataset first_samples(const Dataset& set, int64_t n) {
  Dataset out = set;
  limit_samples(out, n);
  return out;
}

LoopResult train_steps(Network& net, const DataSource& data, const LoopOptions& options,
                       const ProgressFn& progress, const Hooks& hooks) {
  const Dataset& set = data.train;
  if (options.batch_size <= 0 || options.batch_size > set.count) {
    fail("experiment", "batch_size", std::to_string(options.batch_size) + " does not fit " +
                                         std::to_string(set.count) + " training images");
  }
  const int64_t batch = options.batch_size;
  const Dataset subset = first_samples(data.test, options.eval_images);
  auto evaluate_subset = [&] { return evaluate(net, subset, data, options.eval_batch); };

  std::unique_ptr<Optimizer> optimizer = make_optimizer(options.optimizer, static_cast<int64_t>(net.parameters().size()));
  TrainStep train_step(net, data, *optimizer, batch, {.seed = options.seed}, options.fusion);
  std::vector<int64_t> order(static_cast<size_t>(set.count));
  const int64_t batches_per_epoch = set.count / batch;

  LoopResult result;
  const auto start = Clock::now();
  auto seconds = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };
  EvalResult first = evaluate_subset();
  result.curve.push_back({0, std::nan(""), first.loss, first.accuracy()});
  if (hooks.at_eval) hooks.at_eval(0);
  double accuracy = first.accuracy(), interval_loss = 0;
  int64_t interval_steps = 0;
  progress({.step = 0, .steps = options.steps, .train_loss = std::nan(""), .accuracy = accuracy,
            .evaluated = true, .seconds = seconds()});

  for (int64_t step = 1; step <= options.steps; ++step) {
    const int64_t epoch = (step - 1) / batches_per_epoch, b = (step - 1) % batches_per_epoch;
    if (b == 0) {
      if (options.epoch_order) {
        options.epoch_order(order, epoch);
        if (static_cast<int64_t>(order.size()) != set.count) fail("experiment", "epoch_order", "not one entry per sample");
      } else {
        shuffle_epoch(order, options.seed, epoch);
      }
    }
    const StepResult r = train_step.run(order.data() + b * batch, batch, step, options.optimizer.lr, false,
                                        [&](int64_t n) { if (hooks.after_backward) hooks.after_backward(step, n); });
    const double loss = r.loss;
    if (r.fault != StepResult::Fault::None) {
      result.diverged_at = step;
      result.divergence = r.fault == StepResult::Fault::Loss ? "loss " + std::to_string(loss) : "gradient of " + r.where;
      result.curve.push_back({step, loss, std::nan(""), std::nan("")});
      break;
    }
    result.steps_done = step;
    interval_loss += loss;
    ++interval_steps;
    const bool eval_now = step == options.steps || (options.eval_every > 0 && step % options.eval_every == 0);
    const double mean_loss = interval_loss / static_cast<double>(interval_steps);
    if (eval_now) {
      const EvalResult e = evaluate_subset();
      accuracy = e.accuracy();
      result.curve.push_back({step, mean_loss, e.loss, accuracy});
      if (hooks.at_eval) hooks.at_eval(step);
      interval_loss = 0;
      interval_steps = 0;
    }
    if (!eval_now && options.loss_every > 0 && step % options.loss_every == 0) {
      result.curve.push_back({step, mean_loss, std::nan(""), std::nan("")});
      interval_loss = 0;
      interval_steps = 0;
    }
    if (eval_now || step % 10 == 0) {
      progress({.step = step, .steps = options.steps, .train_loss = mean_loss, .accuracy = accuracy,
                .evaluated = eval_now, .seconds = seconds()});
    }
  }
  if (result.diverged_at == 0 && options.final_full_test) {
    result.final_test = evaluate(net, data.test, data, options.eval_batch);
  }
  result.seconds = seconds();
  return result;
}

}  // namespace bnlab::experiments
